package registry

import "github.com/switchyard/switchyard/internal/carddata"

// maskText masks the card numbers in s, free text p typed into field of object
// (carddata.MaskText): an operator who pastes a PAN into a reason or a note must
// not store it in clear (the registry's Badger files, the oplog, in a cluster the
// STATE stream). It logs that it did, never the number. The text is kept, masked:
// the note is not refused.
func (r *store) maskText(p Actor, object, field, s string) string {
	m, n := carddata.MaskText(s)
	if n > 0 {
		r.log.Info().Str("object", object).Str("field", field).Str("by", p.Name).Int("card_numbers", n).
			Msg("card number masked in free text")
	}
	return m
}

// maskChange masks the free text of requested change c: its reason and the
// names (and ASCII names) of the merchants it registers or renames, and an alert
// rule's description.
func (r *review) maskChange(p Actor, c *Change) {
	obj := "change " + string(c.Op)
	if c.Target != "" {
		obj += " " + c.Target
	}
	c.Reason = r.maskText(p, obj, "reason", c.Reason)
	if c.Merchant != nil {
		m := *c.Merchant
		m.Name = r.maskText(p, "merchant "+m.ID, "name", m.Name)
		m.NameLatin = r.maskText(p, "merchant "+m.ID, "name_latin", m.NameLatin)
		c.Merchant = &m
	}
	if c.MerchantPatch != nil && (c.MerchantPatch.Name != nil || c.MerchantPatch.NameLatin != nil) {
		mp := *c.MerchantPatch
		if mp.Name != nil {
			name := r.maskText(p, "merchant "+c.Target, "name", *mp.Name)
			mp.Name = &name
		}
		if mp.NameLatin != nil {
			latin := r.maskText(p, "merchant "+c.Target, "name_latin", *mp.NameLatin)
			mp.NameLatin = &latin
		}
		c.MerchantPatch = &mp
	}
	if len(c.Merchants) > 0 {
		ms := make([]Merchant, len(c.Merchants))
		for i, m := range c.Merchants {
			m.Name = r.maskText(p, "merchant "+m.ID, "name", m.Name)
			m.NameLatin = r.maskText(p, "merchant "+m.ID, "name_latin", m.NameLatin)
			ms[i] = m
		}
		c.Merchants = ms
	}
	if c.AlertRule != nil {
		ar := *c.AlertRule
		ar.Description = r.maskText(p, "alert rule "+ar.ID, "description", ar.Description)
		c.AlertRule = &ar
	}
}
