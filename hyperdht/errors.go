package hyperdht

import "fmt"

// Error is an error JS hyperdht names with a code; relayed clients show
// its text, "CODE: message", to users, so codes and messages are JS's.
// Errors with the same code match under errors.Is whatever the message.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is matches errors of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// The errors of connecting, with the codes and default messages of JS
// hyperdht's lib/errors.js.
var (
	ErrPeerNotFound           = &Error{"PEER_NOT_FOUND", "Peer not found"}
	ErrPeerConnectionFailed   = &Error{"PEER_CONNECTION_FAILED", "Could not connect to peer"}
	ErrHolepunchAborted       = &Error{"HOLEPUNCH_ABORTED", "Holepunch aborted"}
	ErrHolepunchInvalid       = &Error{"HOLEPUNCH_INVALID", "Invalid holepunch payload"}
	ErrHolepunchProbeTimeout  = &Error{"HOLEPUNCH_PROBE_TIMEOUT", "Holepunching probe did not finish in time"}
	ErrDoubleRandomizedNATs   = &Error{"HOLEPUNCH_DOUBLE_RANDOMIZED_NATS", "Both remote and local NATs are randomized"}
	ErrRemoteNotHolepunching  = &Error{"REMOTE_NOT_HOLEPUNCHING", "Remote is not holepunching"}
	ErrRemoteNotHolepunchable = &Error{"REMOTE_NOT_HOLEPUNCHABLE", "Remote is not holepunchable"}
	ErrRemoteAborted          = &Error{"REMOTE_ABORTED", "Remote aborted"}
	ErrBadHolepunchReply      = &Error{"BAD_HOLEPUNCH_REPLY", "Bad holepunch reply"}
	ErrServerIncompatible     = &Error{"SERVER_INCOMPATIBLE", "Server is using an incompatible version"}
	ErrServerError            = &Error{"SERVER_ERROR", "Server returned an error"}
)

// remoteAborted is REMOTE_ABORTED with the peer's error code, as JS words it.
func remoteAborted(code uint64) error {
	return &Error{ErrRemoteAborted.Code, fmt.Sprintf("Remote aborted with error code %d", code)}
}
