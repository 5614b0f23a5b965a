package routing

import "time"

// OpenSubject is where a worker takes requests to open sessions. Edge,
// worker and session ids pass ValidID, so each is one subject token.
func OpenSubject(worker string) string { return "dhtrelay.worker." + worker + ".open" }

// WorkerSessions is the prefix of the subjects a worker receives its
// sessions' frames on: WorkerSessions(w) + "." + session.
func WorkerSessions(worker string) string { return "dhtrelay.worker." + worker + ".session" }

// EdgeSessions is the prefix of the subjects an edge receives its
// sessions' frames on.
func EdgeSessions(edge string) string { return "dhtrelay.edge." + edge + ".session" }

// FlushTimeout bounds the wait for NATS to confirm a node's subscriptions.
const FlushTimeout = 10 * time.Second
