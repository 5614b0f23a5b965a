module github.com/dhtrelay/dht-relay

go 1.26.8

require (
	filippo.io/edwards25519 v1.2.0
	github.com/aead/chacha20 v0.0.0-20180709150244-8b13a72661da
	github.com/aead/poly1305 v0.0.0-20180717145839-3fee0db0b635
	golang.org/x/crypto v0.59.0
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
