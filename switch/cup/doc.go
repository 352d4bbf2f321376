// Package cup speaks the UnionPay-style POS terminal dialect (`cup`): a TPDU and a
// 6-byte header before a BCD MTI, a binary bitmap and BCD-packed fields, working keys
// fetched at sign-in and a MAC by the CUP "ECB" algorithm or ANSI X9.19.
//
// The codec (Frame, Spec) is built on moov-io/iso8583 field specs; what moov lacks
// (left-aligned nibble fields with the track separator D) is the Nibbles encoder.
// The Adapter is a frontend.Processor for a `cup` listener: it handles what only
// this dialect has (sign-in with working keys, the CUP MAC, TPDU and header) and
// maps every card transaction onto the switch's one pipeline through the ASCII
// contract (request.go holds that mapping in one place), so that binding checks,
// rules, PIN translation, routing, the journal, reversals, duplicates and
// settlement are the same code for every dialect. docs/cup-dialect.md is the field
// table as implemented.
package cup
