//! Free loopback ports.

use std::net::{Ipv4Addr, TcpListener};

use anyhow::{Context, Result};

/// `n` distinct ports that were free a moment ago on 127.0.0.1. All listeners are held
/// until every port is chosen, so the ports differ from each other. The window between
/// this call and a component binding its port is acceptable for a test harness: a clash
/// shows up as the component failing to start, with its log.
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0"))
        .collect::<Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}
