// Package apps manages the applications that run on the acquirer's terminals:
// signed packages, their staged publication to groups of terminals under the
// registry's two-person review, the update offer a terminal gets at sign-on and
// echo, the resumable download it makes over HTTPS, and the rollout it reports.
//
// # Packages
//
// A package is a blob (the application image, opaque to the switch) with a name,
// a dotted numeric version, the terminal models and kinds it targets, and a
// signature by one of the acquirer's app-signing keys (Ed25519 or ECDSA P-256).
// What is signed is the statement of Statement: the name, version, SHA-256 and
// size of the blob, the models and kinds; an ECDSA signature is ASN.1 over the
// SHA-256 of the statement. Upload streams the blob to a temporary file while
// hashing it, checks the signature, and only then stores the blob under its
// SHA-256 in the data directory (content-addressed: apps/blobs/sha256/HEX). A blob
// is hashed again before it is first served after a start and whenever its size
// or modification time changed: an altered file is refused (and logged), never
// served. A package is held to the keys of today, not of its upload: once its key
// is revoked or replaced under its ID, it can no longer be published and its
// release is offered to no terminal (state.trust).
//
// # Reviewed operations
//
// Adding a signing key (app-key.put), publishing (app.publish) and withdrawing
// (app.withdraw) are registry changes (registry.RegisterOp): requested by an
// operator, applied when a different reviewer approves, in the same change list
// and hash-chained oplog as merchants and terminals. The Manager's state is the
// fold of the approved changes in their order, rebuilt at every start and after
// every approval, so that nothing is lost between an approval and its effect.
//
// # Groups and rollout
//
// A publication targets a named rollout group: a selector (merchants, merchant
// groups, tiers, regions, terminal models, kinds, terminal IDs; fields AND, values
// OR) and a percentage. The percentage is exact and deterministic: the group's
// matching terminals are ordered by SHA-256 of "group/TID", and the first
// round(N x percent / 100) of them are offered the release, so 10% of 200
// terminals is 20 terminals, the same 20 at every start, and raising the
// percentage keeps them. The merchant and terminal IDs a target names must be
// registered and not closed, at the request and at the approval, unless the
// publication allows unknown targets (unknownTargets). The group's minimum version applies to all of its
// terminals (not only those offered); the registry's Check holds each to the
// higher of it and the terminal's own MinAppVersion (58 app-version-low, as
// before), so a rollout never lowers a floor set on a terminal. Check asks the
// groups at every request from the terminal's current record
// (assignment.GroupMinimum), so a new or changed terminal is held at once. Offers
// and minimums are per application: a terminal is offered, and held to the
// minimum of, the application it names (DE 48 AN, or its attestation's app); one
// naming none is held to the highest minimum of its groups (offerFor, GroupMinimum). Withdrawing stops
// downloads at once and, with rollback, makes the group's previous release
// current again.
//
// # Terminals
//
// At sign-on and echo (0800) the pipeline calls Offer with the AV the terminal
// sent: the AV is recorded as the terminal's installed version, of the
// application it names (AN; a group's rollout counts only the terminals of its
// application: Rollout.Versions), and when a newer
// release is offered to it the answer's DE 48 carries tag UP =
// VERSION:SIZE:SHA256:TOKEN (docs/terminal-interface.md). TOKEN authenticates the
// download as that terminal: an HMAC-SHA256, under a key of this switch (stored
// only sealed under a key derived from the card hash key: tokenkey.go), of the
// terminal ID, the package hash and an expiry (24 h). The terminal learned it over
// its own ISO link (MAC-verified when its profile requires a MAC), so whoever
// holds it is that terminal for that one package. The download, GET
// /apps/v1/download/{tid}/{sha256} with "Authorization: Bearer TOKEN", is served
// by http.ServeContent (Range requests: a broken download resumes where it
// stopped); POST /apps/v1/report/{tid} reports an installation's outcome, bound
// to the token's package: a version that is not of it (OfRelease) is recorded
// but counted as another version, never on the release (Report.TokenVersion).
package apps
