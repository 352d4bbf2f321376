package qr

import (
	"fmt"
	"strings"
)

// Route is one line of the payment-code table: codes that start with one of
// Prefixes and have MinLen to MaxLen digits belong to Network and go to Connector.
type Route struct {
	Network   string   `yaml:"network" json:"network"`
	Prefixes  []string `yaml:"prefixes" json:"prefixes"`
	MinLen    int      `yaml:"min_len" json:"min_len"`
	MaxLen    int      `yaml:"max_len" json:"max_len"`
	Connector string   `yaml:"connector" json:"connector"`
}

// The networks of the default table.
const (
	UnionPay = "unionpay"
	WeChat   = "wechat"
	Alipay   = "alipay"
)

// DefaultGUID is the globally unique identifier of a network in ID 00 of its merchant
// account information template (IDs 26-51) when the connector configures none:
// UnionPay's AID, WeChat Pay's and Alipay's reverse domain names; another network's
// is its name.
func DefaultGUID(network string) string {
	switch network {
	case UnionPay:
		return "A000000333010101"
	case WeChat:
		return "COM.TENCENT.WXPAY"
	case Alipay:
		return "COM.ALIPAY"
	}
	return network
}

// DefaultRoutes is the payment-code table the switch starts with: UnionPay codes
// start with 62 and have 19 digits, WeChat Pay codes 10 to 15 and 18 digits, Alipay
// codes 25 to 30 and 16 to 24 digits. Connectors are named after the networks.
func DefaultRoutes() []Route {
	var wx, ali []string
	for p := 10; p <= 15; p++ {
		wx = append(wx, fmt.Sprint(p))
	}
	for p := 25; p <= 30; p++ {
		ali = append(ali, fmt.Sprint(p))
	}
	return []Route{
		{Network: UnionPay, Prefixes: []string{"62"}, MinLen: 19, MaxLen: 19, Connector: UnionPay},
		{Network: WeChat, Prefixes: wx, MinLen: 18, MaxLen: 18, Connector: WeChat},
		{Network: Alipay, Prefixes: ali, MinLen: 16, MaxLen: 24, Connector: Alipay},
	}
}

// Table classifies payment codes by prefix and length; the first matching route wins.
type Table struct{ routes []Route }

// NewTable checks the routes: a network, a connector, digit prefixes and lengths
// from 8 to 32 with MinLen <= MaxLen. Errors name the route by its index.
func NewTable(routes []Route) (*Table, error) {
	for i, r := range routes {
		where := fmt.Sprintf("qr.routes[%d]", i)
		if r.Network == "" || r.Connector == "" {
			return nil, fmt.Errorf("%s: network and connector are required", where)
		}
		if len(r.Prefixes) == 0 {
			return nil, fmt.Errorf("%s (%s): at least one prefix is required", where, r.Network)
		}
		for _, p := range r.Prefixes {
			if !digits(p) {
				return nil, fmt.Errorf("%s (%s): prefix %q is not digits", where, r.Network, p)
			}
		}
		if r.MinLen < 8 || r.MaxLen > 32 || r.MinLen > r.MaxLen {
			return nil, fmt.Errorf("%s (%s): lengths %d to %d are not within 8 to 32", where, r.Network, r.MinLen, r.MaxLen)
		}
	}
	return &Table{routes: append([]Route(nil), routes...)}, nil
}

// Classify returns the route of a payment code, or false when none matches (a code
// that is not all digits matches none).
func (t *Table) Classify(code string) (Route, bool) {
	if !digits(code) {
		return Route{}, false
	}
	for _, r := range t.routes {
		if len(code) < r.MinLen || len(code) > r.MaxLen {
			continue
		}
		for _, p := range r.Prefixes {
			if strings.HasPrefix(code, p) {
				return r, true
			}
		}
	}
	return Route{}, false
}

// Routes returns the table's routes.
func (t *Table) Routes() []Route { return append([]Route(nil), t.routes...) }

// Mask masks a payment code as a PAN: the first 6 and last 4 digits, the rest '*';
// codes shorter than 13 are masked entirely.
func Mask(code string) string {
	if len(code) < 13 {
		return strings.Repeat("*", len(code))
	}
	return code[:6] + strings.Repeat("*", len(code)-10) + code[len(code)-4:]
}
