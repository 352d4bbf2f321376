// Package registry is Switchyard's merchant and terminal registry: the records, their
// lifecycle under two-person review with an append-only operation log, the binding
// checks against terminal swapping (切机) and SoftPOS device integrity that run on
// every financial request, the incidents those checks raise, and the offline
// monitor with its alert rules.
//
// # Storage and the hot path
//
// Everything is stored in a Badger database shared with other subsystems, under
// keys beginning with "reg/". Every admin write is a Badger transaction followed by
// db.Sync. The registry keeps a complete in-memory snapshot of merchants and
// terminals: a map per kind, published through an atomic pointer, whose entries are
// slots holding an atomic pointer to an immutable record. An approved change swaps
// the record pointer of the slot (or, for new records, publishes a copied map), so
// Check sees it at once and never takes a lock shared with writers. Last-seen data
// (time, address, location) lives in the slot under a per-terminal mutex and is
// written to Badger every SeenFlushInterval (default 10 s) and on Close.
//
// # Check order and reasons
//
// Check computes every fact first (so the risk rules and incidents see all of them)
// and then declines for the first of these that applies:
//
//	terminal-unknown       58  DE 41 not registered
//	terminal-pending       58  terminal not active (pending)
//	terminal-suspended     58  terminal not active (suspended, by an operator or automatically)
//	terminal-closed        58  terminal not active (closed)
//	merchant-mismatch      03  DE 42 is not the terminal's merchant             incident
//	merchant-unknown       03  the terminal's merchant is not registered
//	merchant-pending       03  merchant not active (pending)
//	merchant-frozen        03  merchant not active (frozen)
//	merchant-closed        03  merchant not active (closed)
//	mac-required           63  MAC required but not verified (the lead refuses these before Check) incident
//	device-compromised     59  SoftPOS: any IF finding; terminal suspended at once  incident
//	softpos-device-unbound 58  SoftPOS: the record has no device serial (stored before one was
//	                           required): no phone's token can be trusted      incident
//	attestation-missing    58  SoftPOS: no AT                                    incident
//	attestation-fail       58  SoftPOS: AT verdict FAIL                          incident
//	attestation-forged, -unknown-key, -malformed, -replayed, -unbound, -app-refused
//	                   59/58  SoftPOS: the signed token (AJ) refused by the lead's verifier (package attest)  incident
//	attestation-legacy-refused 58  SoftPOS: unsigned AT while the terminal's AttestLegacy is off   incident
//	attestation-stale      58  SoftPOS: attestation older than the terminal's AttestMaxAge (default
//	                           MaxAttestationAge, 120 s), or that far in the future  incident
//	attestation-device-mismatch 59  SoftPOS: the token's device is not the bound device serial  incident
//	attestation-malformed  58  SoftPOS: the token has no ver while a minimum version applies (the
//	                           signed version is the one checked, never AV)     incident
//	attestation-no-tee     58  SoftPOS: the token says the phone has no TEE         incident
//	device-mismatch        59  DI differs from the bound device serial           incident
//	sim-mismatch           59  SI differs from the bound SIM ICCID               incident
//	imei-mismatch          59  IM differs from the bound IMEI                    incident
//	location-out-of-range  59  GL farther from the deployed location than its radius  incident
//	identity-missing       59  a bound DI/SI/IM, or GL of a located terminal, is absent and the
//	                           terminal's policy is "decline" (policy "flag": accepted, Facts.Flagged,
//	                           counted in switchyard_registry_flagged_total and noted in the journal)  incident
//	network-denied         58  source address outside the terminal's allowed networks  incident
//	app-version-low        58  AV below the terminal's minimum version (the higher of its own and its
//	                           rollout group's), or absent while one is set  incident
//
// Status declines (terminal or merchant not active, unknown terminal) raise no
// incident: they are not a binding violation and would let anyone flood the
// incident list with made-up terminal IDs; they are counted in the metrics.
// A flagged request raises no incident either (the rules decide).
//
// SoftPOS IF findings are acted on before the attestation is judged: a finding
// reported under the terminal's verified MAC can only come from the holder of its
// MAC key, so it cannot be used by an outsider to get a terminal suspended, and a
// compromised device must not escape suspension by also sending a stale
// attestation. A clean IF counts only with a fresh, OK attestation. IF and AT are
// checked only for kind softpos. Any non-empty IF value counts as a finding, known
// or not.
//
// Distances are great-circle distances by the haversine formula on a sphere of
// the IUGG mean Earth radius (6,371,008.8 m); WGS84 coordinates are used as they
// are. The error against the ellipsoid is below 0.5 %. Versions compare as dotted
// numbers part by part (1.10 > 1.9, 1.2 == 1.2.0).
//
// # Lifecycle
//
// Every change of a merchant or terminal is a Change requested by an operator (or
// admin) and applied only when a different, independent principal with the
// reviewer (or admin) role approves it: no account may have held both the
// requester's and the reviewer's (created it or reset its password, directly or
// through accounts it created; User.Controllers). The oplog records the request, the approval or rejection and,
// for each record touched, the record before and after, the approver (actor) and
// the requester. Entries are hash-chained (VerifyOplog). The switch itself acts as
// actor "system" when it suspends a compromised SoftPOS or runs a suspend alert
// action; such a suspension is lifted by an ordinary, reviewed resume.
package registry
