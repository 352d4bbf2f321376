package ruleset

import (
	"sync"
	"unsafe"
)

// An envBox is an evaluation environment the expressions read through an
// interface value without copying it. expr takes its environment as an `any`;
// boxing an Input (about 1.5 KB) the ordinary way copies it to a fresh heap
// object for every evaluation and every Observe, 3 KB and two allocations per
// authorization. The box instead is an interface whose data word points at the
// pooled Input: to the expressions (and to reflect, which expr reads fields
// with) it is an Input value held in an interface, not addressable, so a field
// read does not copy the field either (an *Input would: reflect copies a field
// of an addressable struct before boxing it).
//
// The rule that makes this safe: the Input is not changed while a box of it is
// in use. An evaluation fills the Input, runs the programs, reads their results
// (a bool or an int, read at once) and only then returns the box to the pool.
// Results kept beyond that (RefValues' values) use an ordinary copy instead.
type envBox struct{ in Input }

var envBoxes = sync.Pool{New: func() any { return new(envBox) }}

func getEnvBox() *envBox { return envBoxes.Get().(*envBox) }

// put returns b to the pool; no box of it may be used afterwards.
func (b *envBox) put() { envBoxes.Put(b) }

// eface is the layout of an empty interface value (runtime.eface).
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// inputType is the type word of an interface holding an Input.
var inputType = func() unsafe.Pointer {
	var x any = Input{}
	return (*eface)(unsafe.Pointer(&x)).typ
}()

// any is an interface holding b's Input without a copy (see envBox).
func (b *envBox) any() any {
	var x any
	e := (*eface)(unsafe.Pointer(&x))
	e.typ, e.data = inputType, unsafe.Pointer(&b.in)
	return x
}
