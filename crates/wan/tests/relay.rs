//! The relay with real sockets: an echo server behind it, datagrams through it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use coffre_wan::{Profile, Relay};

/// A UDP echo server on loopback, on its own thread.
fn echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
    addr
}

fn client(relay: &Relay) -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(relay.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c
}

#[test]
fn datagrams_cross_at_the_rate_and_after_the_delay() {
    // 2 Mbit/s up: 100 datagrams of 972 bytes (1000 on the wire) take 400 ms
    // to cross; the echo comes back unlimited after 2 x 25 ms.
    let relay = Relay::spawn(
        echo(),
        Profile::parse("up=2mbit rtt=50ms queue=1s").unwrap(),
    )
    .unwrap();
    let c = client(&relay);
    let start = Instant::now();
    for i in 0..100u8 {
        c.send(&[i; 972]).unwrap();
    }
    let mut buf = [0u8; 2000];
    let mut got = Vec::new();
    while let Ok(n) = c.recv(&mut buf) {
        assert_eq!(n, 972);
        got.push(buf[0]);
        if got.len() == 100 {
            break;
        }
    }
    let t = relay.counters();
    assert_eq!(got, (0..100).collect::<Vec<u8>>(), "all, in order: {t:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(440),
        "{took:?}: faster than the line"
    );
    assert_eq!(
        (t.up.packets, t.up.bytes, t.down.packets),
        (100, 97_200, 100)
    );
}

#[test]
fn an_outage_drops_both_ways_then_the_line_comes_back() {
    let relay = Relay::spawn(echo(), Profile::unlimited()).unwrap();
    let c = client(&relay);
    let mut buf = [0u8; 100];
    c.send(b"before").unwrap();
    assert_eq!(c.recv(&mut buf).unwrap(), 6);
    relay.outage(Duration::from_millis(700));
    c.send(b"during").unwrap();
    assert!(c.recv(&mut buf).is_err(), "nothing crosses an outage");
    std::thread::sleep(Duration::from_millis(400));
    c.send(b"after").unwrap();
    assert_eq!(c.recv(&mut buf).unwrap(), 5);
    assert_eq!(relay.counters().up.down, 1);
    relay.set_down(true);
    c.send(b"down").unwrap();
    assert!(c.recv(&mut buf).is_err());
    relay.set_down(false);
    c.send(b"up").unwrap();
    assert_eq!(c.recv(&mut buf).unwrap(), 2);
}

#[test]
fn a_datagram_larger_than_the_line_is_dropped() {
    let relay = Relay::spawn(echo(), Profile::parse("mtu=1500").unwrap()).unwrap();
    let c = client(&relay);
    let mut buf = [0u8; 20000];
    c.send(&[0; 16 * 1024]).unwrap();
    c.send(&[1; 1472]).unwrap();
    assert_eq!(c.recv(&mut buf).unwrap(), 1472);
    assert_eq!(relay.counters().up.too_big, 1);
}

#[test]
fn each_client_port_is_its_own_flow() {
    let relay = Relay::spawn(echo(), Profile::unlimited()).unwrap();
    let (a, b) = (client(&relay), client(&relay));
    let mut buf = [0u8; 10];
    a.send(b"a").unwrap();
    b.send(b"bb").unwrap();
    assert_eq!(a.recv(&mut buf).unwrap(), 1);
    assert_eq!(b.recv(&mut buf).unwrap(), 2);
}
