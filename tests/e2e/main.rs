//! End-to-end tests: the real server on `127.0.0.1:0`, spoken to over real
//! HTTP and real WebSocket. Each test names the SPEC rule it pins.

mod api;
mod hardening;
mod helpers;
mod messaging;
mod offline;
mod process;
mod sessions;
mod stress;
mod websocket;
