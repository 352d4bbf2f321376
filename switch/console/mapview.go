package console

import (
	"math"
	"net/http"
	"sort"

	"github.com/switchyard/switchyard/switch/registry"
)

// The map page: every located terminal's registered place and radius against
// where it last reported (DE 48 GL), drawn as SVG from the coordinates (no tile
// server is reachable from an acquirer's admin network), relocated terminals
// (last report outside the radius, or an open location incident) highlighted,
// and the counts by region. The template draws the SVG from the numbers here,
// so every text in it goes through html/template's escaping.

// mapPoint is one terminal on the map, in SVG coordinates.
type mapPoint struct {
	ID, Merchant, Region string
	X, Y, R              float64 // registered place and radius
	SX, SY               float64 // last reported place
	HasSeen              bool
	Moved                bool // last report outside the radius
	Incident             bool // an open location incident
	DistanceM            float64
}

// regionCount is a region's terminals, located ones and relocated ones.
type regionCount struct {
	Region                        string
	Terminals, Located, Relocated int
	Incidents                     int
}

const mapW, mapH = 900.0, 560.0

func (c *Console) mapPage(w http.ResponseWriter, r *http.Request, s *session) {
	open := map[string]bool{}
	if incs, err := c.o.Registry.Incidents(registry.IncidentFilter{Reason: registry.ReasonLocationRange, Limit: 1000}); err == nil {
		for _, inc := range incs {
			if inc.Status != registry.IncidentResolved {
				open[inc.TerminalID] = true
			}
		}
	}
	type raw struct {
		t      *registry.Terminal
		region string
		seen   *registry.GeoPoint
	}
	var pts []raw
	regions := map[string]*regionCount{}
	minLat, maxLat, minLon, maxLon := 90.0, -90.0, 180.0, -180.0
	grow := func(lat, lon float64) {
		minLat, maxLat, minLon, maxLon = math.Min(minLat, lat), math.Max(maxLat, lat), math.Min(minLon, lon), math.Max(maxLon, lon)
	}
	for _, t := range c.o.Registry.Terminals(registry.TerminalFilter{}) {
		region := "—"
		if m, ok := c.o.Registry.Merchant(t.MerchantID); ok {
			region = m.Region
		}
		rc := regions[region]
		if rc == nil {
			rc = &regionCount{Region: region}
			regions[region] = rc
		}
		rc.Terminals++
		if open[t.ID] {
			rc.Incidents++
		}
		if t.Location == nil {
			continue
		}
		rc.Located++
		p := raw{t: t, region: region}
		grow(t.Location.Lat, t.Location.Lon)
		if ls, ok := c.o.Registry.LastSeen(t.ID); ok && ls.Location != nil {
			g := *ls.Location
			p.seen = &g
			grow(g.Lat, g.Lon)
		}
		pts = append(pts, p)
	}
	// An equirectangular projection of the points' box, padded, with the
	// longitude scaled by the cosine of the middle latitude.
	padLat, padLon := math.Max(0.05, (maxLat-minLat)*0.08), math.Max(0.05, (maxLon-minLon)*0.08)
	minLat, maxLat, minLon, maxLon = minLat-padLat, maxLat+padLat, minLon-padLon, maxLon+padLon
	k := math.Cos((minLat + maxLat) / 2 * math.Pi / 180)
	scale := math.Min(mapW/((maxLon-minLon)*k), mapH/(maxLat-minLat))
	proj := func(lat, lon float64) (float64, float64) {
		return (lon - minLon) * k * scale, (maxLat - lat) * scale
	}
	var out []mapPoint
	for _, p := range pts {
		loc := p.t.Location
		mp := mapPoint{ID: p.t.ID, Merchant: p.t.MerchantID, Region: p.region, Incident: open[p.t.ID]}
		mp.X, mp.Y = proj(loc.Lat, loc.Lon)
		mp.R = math.Max(3, loc.RadiusM/111000*scale)
		if p.seen != nil {
			mp.HasSeen = true
			mp.SX, mp.SY = proj(p.seen.Lat, p.seen.Lon)
			mp.DistanceM = haversine(loc.Lat, loc.Lon, p.seen.Lat, p.seen.Lon)
			mp.Moved = mp.DistanceM > loc.RadiusM
		}
		if mp.Moved || mp.Incident {
			regions[p.region].Relocated++
		}
		out = append(out, mp)
	}
	// Relocated ones drawn last, on top.
	sort.SliceStable(out, func(i, j int) bool { return !(out[i].Moved || out[i].Incident) && (out[j].Moved || out[j].Incident) })
	var counts []regionCount
	for _, k := range sortedKeys(regions) {
		counts = append(counts, *regions[k])
	}
	c.render(w, r, s, "map", map[string]any{"Points": out, "Regions": counts, "W": mapW, "H": mapH})
}

// haversine is the distance in metres between two points.
func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const R = 6371000.0
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * R * math.Asin(math.Sqrt(a))
}
