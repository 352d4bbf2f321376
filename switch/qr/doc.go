// Package qr holds what the switch knows about QR payments without any network: the
// EMVCo merchant-presented payload (encode, and decode with its CRC and TLV checks),
// and the table that tells a consumer-presented payment code's network from its
// prefix and length. The payment code is a bearer credential for a minute or so, like
// a PAN: it is masked (Mask) wherever it could be logged or stored.
package qr
