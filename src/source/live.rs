//! Live capture through libpcap: one interface (or `any`), a kernel BPF filter so only SIP
//! reaches user space, TPACKET_V3 underneath (no immediate mode, a short timeout, a large
//! buffer, `dispatch()` a block at a time). Yields frames; knows nothing of SIP.

use std::os::fd::AsRawFd;

use pcap::{Active, Capture};

use super::capture::{timestamp_us, Frame};

/// What a live capture needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    pub interface: String,
    pub ports: Vec<u16>,
    pub promiscuous: bool,
    pub buffer_size: u32,
    pub snaplen: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("interface `{interface}` does not exist (`ip link` lists the interfaces; `any` captures on all of them): check source.capture.interface or --interface")]
    NoInterface { interface: String },
    #[error("no permission to capture on `{interface}`: run callmeta as root, or give it CAP_NET_RAW and CAP_NET_ADMIN (the packaged systemd unit does: AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN) ({reason})")]
    Permission { interface: String, reason: String },
    #[error("cannot capture on `{interface}`: {reason}")]
    Open { interface: String, reason: String },
    #[error("capture filter `{filter}` for `{interface}` does not compile: {reason}")]
    Filter {
        interface: String,
        filter: String,
        reason: String,
    },
    #[error("capture on `{interface}` failed: {reason}")]
    Read { interface: String, reason: String },
}

/// Kernel and interface counters of one capture (pcap_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub received: u64,
    /// Dropped by the kernel: the buffer was full.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// How long `dispatch` waits on a quiet wire before returning, so the
/// capture thread can run timers and see control messages.
const TIMEOUT_MS: i32 = 200;

/// The BPF filter for `ports`: SIP on those ports over UDP or TCP, plus every IP
/// fragment, since only a datagram's first fragment carries its ports (RFC 791) and a
/// large INVITE would otherwise lose its tail. Ethernet captures add the same filter
/// behind an 802.1Q tag; Linux cooked captures (`any`) have their tags stripped already.
pub fn bpf_filter(ports: &[u16], vlan: bool) -> String {
    let ports: Vec<String> = ports.iter().map(|p| format!("port {p}")).collect();
    let base = format!(
        "({}) or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)",
        ports.join(" or ")
    );
    if vlan {
        format!("{base} or (vlan and ({base}))")
    } else {
        base
    }
}

pub struct LiveCapture {
    cap: Capture<Active>,
    interface: String,
    dlt: i32,
}

impl LiveCapture {
    pub fn open(cfg: &LiveConfig) -> Result<LiveCapture, LiveError> {
        let interface = cfg.interface.clone();
        let open_err = |e: pcap::Error| classify(&interface, e);
        let cap = Capture::from_device(cfg.interface.as_str())
            .map_err(open_err)?
            .promisc(cfg.promiscuous)
            .snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(cfg.buffer_size).unwrap_or(i32::MAX))
            .timeout(TIMEOUT_MS)
            // Immediate mode would wake us per packet; TPACKET_V3 blocks are the point.
            .immediate_mode(false)
            // Nanoseconds from the kernel, cut to microseconds by us exactly as capture
            // files are, so a replayed capture gives the same times as the live run.
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(open_err)?
            // TPACKET_V3 does not retire an empty block, so a blocking read on a quiet
            // wire never returns, timeout or not (libpcap's poll waits on the block). We
            // read without blocking and wait in `dispatch` with our own poll and timeout.
            .setnonblock()
            .map_err(open_err)?;
        let dlt = cap.get_datalink().0;
        let mut live = LiveCapture {
            cap,
            interface,
            dlt,
        };
        live.set_ports(&cfg.ports)?;
        Ok(live)
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn dlt(&self) -> i32 {
        self.dlt
    }

    /// Replaces the kernel filter: a reload that changes only the ports keeps the capture
    /// (and its open calls) running.
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<(), LiveError> {
        let filter = bpf_filter(ports, self.dlt == 1);
        self.cap
            .filter(&filter, true)
            .map_err(|e| LiveError::Filter {
                interface: self.interface.clone(),
                filter,
                reason: e.to_string(),
            })
    }

    /// Hands every frame of the next kernel block to `on`; returns after at most the read
    /// timeout when the wire is quiet. Returns the number of frames.
    pub fn dispatch(&mut self, mut on: impl FnMut(Frame<'_>)) -> Result<usize, LiveError> {
        let mut fd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        let ready = unsafe { libc::poll(&mut fd, 1, TIMEOUT_MS) };
        if ready == 0 {
            return Ok(0);
        }
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(LiveError::Read {
                interface: self.interface.clone(),
                reason: err.to_string(),
            });
        }
        let result = self.cap.dispatch(None, |p| {
            let ts_us = timestamp_us(p.header.ts.tv_sec, p.header.ts.tv_usec, true);
            on(Frame {
                ts_us,
                data: p.data,
                wire_len: p.header.len,
            });
        });
        match result {
            Ok(n) => Ok(n),
            Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => Ok(0),
            Err(e) => Err(LiveError::Read {
                interface: self.interface.clone(),
                reason: e.to_string(),
            }),
        }
    }

    pub fn stats(&mut self) -> Option<CaptureStats> {
        self.cap.stats().ok().map(|s| CaptureStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }
}

fn classify(interface: &str, e: pcap::Error) -> LiveError {
    let reason = e.to_string();
    let lower = reason.to_ascii_lowercase();
    let interface = interface.to_string();
    if lower.contains("no such device") {
        LiveError::NoInterface { interface }
    } else if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission { interface, reason }
    } else {
        LiveError::Open { interface, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_admits_the_ports_and_every_fragment() {
        assert_eq!(
            bpf_filter(&[5060, 5080], false),
            "(port 5060 or port 5080) or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)"
        );
    }

    #[test]
    fn the_ethernet_filter_repeats_itself_behind_a_vlan_tag() {
        let f = bpf_filter(&[5060], true);
        assert!(
            f.ends_with("or (vlan and ((port 5060) or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)))"),
            "{f}"
        );
    }

    #[test]
    fn the_filters_compile_for_ethernet_and_cooked_captures() {
        for (dlt, vlan) in [
            (pcap::Linktype::ETHERNET, true),
            (pcap::Linktype(276), false),
        ] {
            let dead = Capture::dead(dlt).expect("dead capture");
            dead.compile(&bpf_filter(&[5060, 5061, 5080], vlan), true)
                .expect("filter compiles");
        }
    }

    #[test]
    fn a_missing_interface_is_named_with_the_fix() {
        let cfg = LiveConfig {
            interface: "nosuchif0".into(),
            ports: vec![5060],
            promiscuous: false,
            buffer_size: 1 << 20,
            snaplen: 65_535,
        };
        let err = LiveCapture::open(&cfg)
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.contains("nosuchif0") && err.contains("does not exist"),
            "{err}"
        );
    }
}
