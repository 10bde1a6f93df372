// Package hostsim is an in-process simulation of a sub2api host (the AI
// gateway cn-relay-manager imports provider keys into). It speaks the host's
// public HTTP API as recorded in internal/host/testdata/sub2api for three host
// profiles ("0.1.179", "0.1.129", "fork-0.1.321") and really calls the
// upstream base URLs of its accounts, so tests, the demo and benchmarks can
// run the whole import pipeline without a real host.
//
// Response objects are built from per-profile templates (templates/*.json)
// taken from the recordings, so field names and value types follow the real
// hosts even for the many fields the simulator does not model.
//
// It also behaves like the real hosts where concurrency and state matter: a
// write with an Idempotency-Key is in flight for a moment (a twin meanwhile
// gets 409 IDEMPOTENCY_IN_PROGRESS) and a failed one backs off for 5 s; a
// user's JWT outlives the user (401 USER_NOT_FOUND); and Options.OutboundPolicy
// turns on the hosts' outbound URL policy, which 0.1.129/0.1.179 apply when they
// test or forward and the fork when an account is saved.
package hostsim
