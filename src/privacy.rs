//! Pseudonyms: a keyed HMAC-SHA256 that replaces subscriber identifiers in records.
//!
//! The daemon builds one [`Pseudonymiser`] from `[privacy]` (the key file and the list of
//! fields) at start; the store applies it to every record before the record reaches SQLite
//! (write time), and retention applies it to every identifying field of records older than
//! `anonymise_after`. `forget` and `export` take the clear number and look for its
//! pseudonym too.
//!
//! - Text fields become `h:` + the first 16 bytes of HMAC-SHA256(key, value) in lower-case
//!   hex (`h:3f9a1c…`, 34 characters): recognisable, and 128 bits leave no collision in any
//!   realistic store.
//! - Numbers (caller, callee, asserted identity; sender and recipient of messages) are
//!   normalised first exactly like number search (spaces and dashes removed, then leading
//!   `+`), so `+1 555-123` and `1555123` get the same pseudonym and billing per subscriber
//!   still adds up.
//! - Addresses (src_ip, dst_ip) must stay IP addresses (the columns and the record type
//!   hold one): they become the IPv6 address `100::` + the first 8 bytes of the HMAC of
//!   the address text. `100::/64` is the discard-only prefix (RFC 6666): it never appears
//!   in real signalling, so it is as recognisable as `h:`.
//!
//! The key is 32 random bytes, kept hex-encoded in a file created 0600 on first use. Whoever
//! holds it can test guesses (phone numbers are guessable), so it must stay as private as
//! the clear data: a key file readable by group or others is refused.
//!
//! Must never: log or return the key or a clear value in an error, or pseudonymise a value
//! twice (a pseudonym is left as it is, so anonymising an already pseudonymised record
//! keeps billing per subscriber consistent).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::call::{CallRecord, MessageRecord, Record};

/// Message bytes as `Debug` shows them: their length only, so no `{:?}` of a buffer can
/// put a message's content (SDP, MESSAGE text) into a log.
pub(crate) struct Redacted<'a>(pub &'a [u8]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// Where the key lives unless `[privacy] key_file` says otherwise.
pub const DEFAULT_KEY_FILE: &str = "/var/lib/callmeta/pseudonym.key";
/// What every text pseudonym starts with.
pub const PSEUDONYM_PREFIX: &str = "h:";
/// Key length in bytes (the HMAC-SHA256 block is 64; 32 random bytes is its full strength).
pub const KEY_BYTES: usize = 32;
/// Mode of a key file created by callmeta: the daemon's user only.
pub const KEY_FILE_MODE: u32 = 0o600;
/// HMAC bytes kept in a text pseudonym.
const TEXT_BYTES: usize = 16;

/// A field that `[privacy] pseudonymise` may list. For text messages, `caller` covers the
/// sender and `callee` the recipient (the same subscribers, the same pseudonyms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Caller,
    Callee,
    CallerName,
    AssertedIdentity,
    SrcIp,
    DstIp,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Caller,
        Field::Callee,
        Field::CallerName,
        Field::AssertedIdentity,
        Field::SrcIp,
        Field::DstIp,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Caller => "caller",
            Field::Callee => "callee",
            Field::CallerName => "caller_name",
            Field::AssertedIdentity => "asserted_identity",
            Field::SrcIp => "src_ip",
            Field::DstIp => "dst_ip",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The allowed names, for error messages.
    pub fn names() -> String {
        Field::ALL.map(Field::as_str).join(", ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("`{name}` cannot be pseudonymised: expected one of {}", Field::names())]
    UnknownField { name: String },
    #[error("cannot read pseudonym key {}: {source}", .path.display())]
    KeyRead { path: PathBuf, source: io::Error },
    #[error("cannot create pseudonym key {}: {source}", .path.display())]
    KeyCreate { path: PathBuf, source: io::Error },
    /// Never carries the file's content: it is (or was meant to be) the secret.
    #[error(
        "pseudonym key {} is not {} hex digits (a key callmeta made is one line of 64)",
        .path.display(), KEY_BYTES * 2
    )]
    KeyFormat { path: PathBuf },
    #[error(
        "pseudonym key {} has mode {mode:04o}: it must be readable by its owner only \
         (chmod 600), anyone who can read it can test guesses of numbers",
        .path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
}

/// Parses the `[privacy] pseudonymise` list (or a comma-separated CLI value, split first).
pub fn parse_fields<S: AsRef<str>>(names: &[S]) -> Result<Vec<Field>, PrivacyError> {
    let mut fields = Vec::new();
    for name in names {
        let name = name.as_ref().trim();
        let field = Field::from_name(name).ok_or_else(|| PrivacyError::UnknownField {
            name: name.to_owned(),
        })?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

/// The normalisation of number search (`store` query `norm!`), character for character:
/// spaces and dashes removed, then leading `+` signs.
pub fn normalise_number(number: &str) -> String {
    let digits: String = number.chars().filter(|c| *c != ' ' && *c != '-').collect();
    digits.trim_start_matches('+').to_owned()
}

/// Whether `value` is a text pseudonym (`h:` and 32 lower-case hex digits).
pub fn is_pseudonym(value: &str) -> bool {
    value.strip_prefix(PSEUDONYM_PREFIX).is_some_and(|hex| {
        hex.len() == TEXT_BYTES * 2
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether `ip` is an address pseudonym (in `100::/64`, RFC 6666 discard-only).
pub fn is_ip_pseudonym(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[..4] == [0x100, 0, 0, 0])
}

/// The secret key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct PseudonymKey([u8; KEY_BYTES]);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> PseudonymKey {
        PseudonymKey(bytes)
    }

    /// Reads the key at `path`; refuses one readable by group or others.
    pub fn load(path: &Path) -> Result<PseudonymKey, PrivacyError> {
        let read_err = |source| PrivacyError::KeyRead {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_err)?;
        let mode = file.metadata().map_err(read_err)?.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(PrivacyError::KeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        // A key file is 65 bytes; read a little more so a wrong file is refused, not cut.
        let mut text = Vec::with_capacity(128);
        Read::by_ref(&mut file)
            .take(256)
            .read_to_end(&mut text)
            .map_err(read_err)?;
        decode_hex_key(text.trim_ascii()).ok_or_else(|| PrivacyError::KeyFormat {
            path: path.to_owned(),
        })
    }

    /// Reads the key at `path`, or creates it (0600, 32 bytes from the kernel's CSPRNG) when
    /// the file does not exist. Returns the key and whether it was created.
    ///
    /// When run as root (an operator's `callmeta forget` before the daemon ever started),
    /// a new key is handed to the owner and group of its directory, so the daemon's user
    /// can read it later.
    pub fn load_or_create(path: &Path) -> Result<(PseudonymKey, bool), PrivacyError> {
        match Self::load(path) {
            Ok(key) => return Ok((key, false)),
            Err(PrivacyError::KeyRead { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let create_err = |source| PrivacyError::KeyCreate {
            path: path.to_owned(),
            source,
        };
        let mut bytes = [0u8; KEY_BYTES];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(create_err)?;
        // create_new: two processes starting at once must not each write a different key.
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(KEY_FILE_MODE)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Self::load(path).map(|k| (k, false));
            }
            Err(e) => return Err(create_err(e)),
        };
        let written = (|| {
            // `mode` above is filtered by the umask; 0600 is what we promise.
            file.set_permissions(std::fs::Permissions::from_mode(KEY_FILE_MODE))?;
            give_to_directory_owner(&file, path)?;
            let mut line = encode_hex(&bytes);
            line.push('\n');
            file.write_all(line.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            // A half-written key would be refused at the next start; leave nothing.
            let _ = std::fs::remove_file(path);
            return Err(create_err(e));
        }
        Ok((PseudonymKey(bytes), true))
    }
}

/// As root, chown a new file to its directory's owner and group; otherwise nothing (a
/// file we create is already ours).
fn give_to_directory_owner(file: &File, path: &Path) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir)?;
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))
}

/// Who runs this process, for the audit log: the effective user's name (its uid when it
/// has none), plus the invoking user when run through sudo (`root (sudo: alice)`).
pub fn current_os_user() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut name = user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
    if uid == 0 {
        if let Some(sudo) = std::env::var_os("SUDO_USER") {
            name.push_str(&format!(" (sudo: {})", sudo.to_string_lossy()));
        }
    }
    name
}

fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: all-zero bytes are a valid `passwd` (integers and null pointers).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `pwd` and `result` are live locals,
    // `buf` is a live allocation of `buf.len()` bytes that getpwuid_r fills; on success
    // `result` points at `pwd`, whose strings point into `buf`, alive below.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf` (see above).
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn encode_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

fn decode_hex_key(text: &[u8]) -> Option<PseudonymKey> {
    if text.len() != KEY_BYTES * 2 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut key = [0u8; KEY_BYTES];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        key[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(PseudonymKey(key))
}

/// Replaces identifiers with keyed pseudonyms. Cheap to clone; one per daemon.
#[derive(Clone)]
pub struct Pseudonymiser {
    /// Keyed once; each pseudonym clones this state instead of re-deriving the key pads.
    mac: Hmac<Sha256>,
    fields: Vec<Field>,
}

impl fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonymiser")
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl Pseudonymiser {
    /// Pseudonymises `fields` at write time ([`Pseudonymiser::apply`]); every method that
    /// names its field explicitly works whatever `fields` holds.
    pub fn new(key: &PseudonymKey, fields: &[Field]) -> Pseudonymiser {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Pseudonymiser {
            mac,
            fields: fields.to_vec(),
        }
    }

    /// The fields replaced at write time.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    fn digest(&self, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// `h:` + 32 hex digits for any text; a pseudonym is returned unchanged.
    pub fn text(&self, value: &str) -> String {
        if is_pseudonym(value) {
            return value.to_owned();
        }
        let digest = self.digest(value.as_bytes());
        let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + TEXT_BYTES * 2);
        out.push_str(PSEUDONYM_PREFIX);
        out.push_str(&encode_hex(&digest[..TEXT_BYTES]));
        out
    }

    /// The pseudonym of a number: [`normalise_number`] first, so every spelling of one
    /// number maps alike. A pseudonym is returned unchanged.
    pub fn number(&self, number: &str) -> String {
        if is_pseudonym(number) {
            return number.to_owned();
        }
        self.text(&normalise_number(number))
    }

    /// An address in `100::/64`; an address already there is returned unchanged.
    pub fn ip(&self, ip: IpAddr) -> IpAddr {
        if is_ip_pseudonym(&ip) {
            return ip;
        }
        self.ip_of(ip.to_string().as_bytes())
    }

    /// [`Pseudonymiser::ip`] of an address read back as text from the store; text that is
    /// not an address (a damaged row) still becomes an address pseudonym, so it neither
    /// stays in clear nor stops retention.
    pub fn ip_text(&self, text: &str) -> IpAddr {
        match text.parse::<IpAddr>() {
            Ok(ip) => self.ip(ip),
            Err(_) => self.ip_of(text.as_bytes()),
        }
    }

    fn ip_of(&self, canonical: &[u8]) -> IpAddr {
        let digest = self.digest(canonical);
        let mut bits = [0u8; 16];
        bits[0] = 0x01; // 0100::
        bits[8..].copy_from_slice(&digest[..8]);
        IpAddr::V6(Ipv6Addr::from(bits))
    }

    fn field<T>(&self, field: Field, value: &mut T, f: impl Fn(&Self, &T) -> T) {
        if self.fields.contains(&field) {
            *value = f(self, value);
        }
    }

    /// Write time: replaces the configured fields of `record`.
    pub fn apply(&self, record: &mut Record) {
        match record {
            Record::Call(c) => self.apply_call(c),
            Record::Message(m) => self.apply_message(m),
        }
    }

    pub fn apply_call(&self, c: &mut CallRecord) {
        self.field(Field::Caller, &mut c.caller, |p, v| p.number(v));
        self.field(Field::Callee, &mut c.callee, |p, v| p.number(v));
        self.field(Field::CallerName, &mut c.caller_name, |p, v| {
            v.as_deref().map(|n| p.text(n))
        });
        self.field(Field::AssertedIdentity, &mut c.asserted_identity, |p, v| {
            v.as_deref().map(|n| p.number(n))
        });
        self.field(Field::SrcIp, &mut c.src_ip, |p, v| p.ip(*v));
        self.field(Field::DstIp, &mut c.dst_ip, |p, v| p.ip(*v));
    }

    pub fn apply_message(&self, m: &mut MessageRecord) {
        self.field(Field::Caller, &mut m.sender, |p, v| p.number(v));
        self.field(Field::Callee, &mut m.recipient, |p, v| p.number(v));
        self.field(Field::SrcIp, &mut m.src_ip, |p, v| p.ip(*v));
        self.field(Field::DstIp, &mut m.dst_ip, |p, v| p.ip(*v));
    }

    /// The same fields in a saved open call (the tracker's JSON state in the store's
    /// `open_dialogs`), so calls carried across a restart hold no clear identity either.
    /// Replacing is idempotent, so the record the resumed call makes comes out the same.
    /// The caller's hop (`caller_hop`, the first INVITE's addresses) takes the address
    /// pseudonyms: after a restart, a pseudonymised hop no longer tells which hop's final
    /// code the caller saw, so `final_status` falls back to the first one seen.
    pub fn apply_saved_dialog(&self, state: &str) -> String {
        use serde_json::Value;
        let Ok(mut v) = serde_json::from_str::<Value>(state) else {
            // Not the tracker's JSON (cannot happen for states it wrote): keep nothing
            // that could be an identity.
            return String::new();
        };
        let Some(o) = v.as_object_mut() else {
            return String::new();
        };
        for (key, field, number) in [
            ("caller", Field::Caller, true),
            ("callee", Field::Callee, true),
            ("caller_name", Field::CallerName, false),
            ("asserted_identity", Field::AssertedIdentity, true),
        ] {
            if !self.fields.contains(&field) {
                continue;
            }
            if let Some(Value::String(s)) = o.get_mut(key) {
                *s = if number { self.number(s) } else { self.text(s) };
            }
        }
        if let Some(Value::Array(hop)) = o.get_mut("caller_hop") {
            for (i, field) in [Field::SrcIp, Field::DstIp].into_iter().enumerate() {
                if !self.fields.contains(&field) {
                    continue;
                }
                if let Some(Value::String(addr)) = hop.get_mut(i) {
                    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
                        *addr = std::net::SocketAddr::new(self.ip(sa.ip()), sa.port()).to_string();
                    }
                }
            }
        }
        serde_json::to_string(&v).unwrap_or_default()
    }

    /// `anonymise_after`: every identifying field, whatever `fields` says.
    pub fn anonymise(&self) -> Pseudonymiser {
        Pseudonymiser {
            mac: self.mac.clone(),
            fields: Field::ALL.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::call::{Meta, Record, Tracker, TrackerConfig};
    use std::net::SocketAddr;

    /// The caller's and the callee's addresses of the saved-state tests.
    fn hop() -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::from(([10, 0, 0, 1], 5060)),
            SocketAddr::from(([10, 0, 0, 2], 5060)),
        )
    }

    /// Parses `m` and hands it to `t` as seen at `ts` from `src` to `dst`.
    fn feed(
        t: &mut Tracker,
        out: &mut Vec<Record>,
        (ts, src, dst): (i64, SocketAddr, SocketAddr),
        m: &[u8],
    ) {
        let source: std::sync::Arc<str> = std::sync::Arc::from("lo");
        let meta = Meta {
            ts_us: ts,
            src,
            dst,
            transport: crate::net::Transport::Udp,
            source: &source,
        };
        t.on_message(&meta, &crate::sip::parse(m).expect("parse"), out);
    }

    /// `saved` pseudonymised as the store saves it, checked to hold none of `clear`.
    fn saved_pseudonymised(
        p: &Pseudonymiser,
        saved: Vec<(Vec<u8>, String)>,
        clear: &[&str],
    ) -> Vec<(Vec<u8>, String)> {
        let saved: Vec<(Vec<u8>, String)> = saved
            .into_iter()
            .map(|(k, s)| (k, p.apply_saved_dialog(&s)))
            .collect();
        for (_, state) in &saved {
            for c in clear {
                assert!(!state.contains(c), "`{c}` in {state}");
            }
        }
        saved
    }

    /// An open call suspended by a real tracker, pseudonymised as the store saves it,
    /// then resumed and ended: the saved state holds no clear identity, and the record
    /// is the one the unsaved path gives.
    #[test]
    fn a_saved_open_call_holds_pseudonyms_and_resumes_into_the_same_record() {
        let invite = b"INVITE sip:15559870002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: \"Alice\" <sip:+15551230001@a>;tag=f\r\nTo: <sip:15559870002@pbx>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nP-Asserted-Identity: <sip:+15551230000@a>\r\n\r\n";
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:+15551230001@a>;tag=f\r\nTo: <sip:15559870002@pbx>;tag=t\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
        let bye = b"BYE sip:15559870002@pbx SIP/2.0\r\nFrom: <sip:+15551230001@a>;tag=f\r\nTo: <sip:15559870002@pbx>;tag=t\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\n\r\n";
        let (a, b) = hop();
        let p = Pseudonymiser::new(&key(7), &Field::ALL);
        let mut out = Vec::new();
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &mut out, (0, a, b), invite);
        feed(&mut t, &mut out, (1_000_000, b, a), ok);
        let saved = saved_pseudonymised(
            &p,
            t.suspend(&mut out),
            &[
                "+15551230001",
                "15559870002",
                "+15551230000",
                "Alice",
                "10.0.0.1",
                "10.0.0.2",
            ],
        );
        let mut resumed = Tracker::new(TrackerConfig::default());
        assert_eq!(resumed.resume(saved), 0);
        feed(&mut resumed, &mut out, (9_000_000, a, b), bye);
        resumed.finish(&mut out);
        let Some(Record::Call(c)) = out.pop() else {
            panic!("no record")
        };
        assert_eq!(
            (c.caller.clone(), c.callee.clone()),
            (p.number("+15551230001"), p.number("15559870002"))
        );
        assert_eq!(c.src_ip, p.ip("10.0.0.1".parse().unwrap()));
        assert_eq!((c.answered_at, c.ended_at), (Some(1_000_000), 9_000_000));
    }

    #[test]
    fn a_saved_message_holds_pseudonyms_and_resumes_into_the_same_record() {
        let message = b"MESSAGE sip:15559870002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: \"Alice\" <sip:+15551230001@a>;tag=f\r\nTo: <sip:15559870002@pbx>\r\nCall-ID: m1\r\nCSeq: 7 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:+15551230001@a>;tag=f\r\nTo: <sip:15559870002@pbx>;tag=t\r\nCall-ID: m1\r\nCSeq: 7 MESSAGE\r\n\r\n";
        let (a, b) = hop();
        let p = Pseudonymiser::new(&key(7), &Field::ALL);
        let mut out = Vec::new();
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &mut out, (0, a, b), message);
        let saved = saved_pseudonymised(
            &p,
            t.snapshot(),
            &[
                "+15551230001",
                "15559870002",
                "10.0.0.1",
                "10.0.0.2",
                "hello",
            ],
        );
        let mut resumed = Tracker::new(TrackerConfig::default());
        assert_eq!(resumed.resume(saved), 0);
        feed(&mut resumed, &mut out, (300_000, b, a), ok);
        resumed.finish(&mut out);
        let Some(Record::Message(m)) = out.pop() else {
            panic!("no record")
        };
        assert_eq!(
            (m.sender.clone(), m.recipient.clone()),
            (p.number("+15551230001"), p.number("15559870002"))
        );
        assert_eq!(m.src_ip, p.ip("10.0.0.1".parse().unwrap()));
        assert_eq!((m.answered_at, m.final_status), (Some(300_000), Some(200)));
    }

    fn key(b: u8) -> PseudonymKey {
        PseudonymKey::from_bytes([b; KEY_BYTES])
    }

    /// Every type that carries message bytes between the wire (or a log) and the parser
    /// shows their length in `{:?}`, never the bytes.
    #[test]
    fn debug_output_of_buffers_shows_lengths_never_the_bytes() {
        use crate::net::defrag::{Fragment, Reassembled};
        use crate::net::tcp::Segment;
        use crate::source::log::{text::MsgBuf, Direction, LogMessage};
        use crate::source::Frame;
        const CANARY: &[u8] = b"canary-7f3a";
        let (a, b) = hop();
        let mut msg = MsgBuf::default();
        msg.push_line(b"MESSAGE sip:b@h SIP/2.0");
        msg.push_line(CANARY);
        let shown = [
            format!(
                "{:?}",
                LogMessage {
                    ts_us: None,
                    precision_us: 1,
                    direction: Direction::Received,
                    peer: None,
                    endpoints: None,
                    transport: None,
                    payload: CANARY,
                    logged_len: None,
                    truncated: false,
                }
            ),
            format!(
                "{:?}",
                Segment {
                    ts_us: 0,
                    src: a,
                    dst: b,
                    seq: 1,
                    syn: false,
                    fin: false,
                    rst: false,
                    payload: CANARY,
                }
            ),
            format!(
                "{:?}",
                Fragment {
                    src: a.ip(),
                    dst: b.ip(),
                    id: 1,
                    proto: 17,
                    offset: etherparse::IpFragOffset::ZERO,
                    more: true,
                    payload: CANARY,
                }
            ),
            format!(
                "{:?}",
                Reassembled {
                    src: a.ip(),
                    dst: b.ip(),
                    proto: 17,
                    data: CANARY.to_vec(),
                }
            ),
            format!(
                "{:?}",
                Frame {
                    ts_us: 0,
                    data: CANARY,
                    wire_len: 11,
                }
            ),
            format!(
                "{:?}",
                crate::source::log::text::asterisk_prefix(
                    b"[2026-11-29 18:00:00] VERBOSE[1] res_pjsip_logger.c: canary-7f3a"
                )
            ),
            format!("{msg:?}"),
        ];
        for s in &shown {
            assert!(s.contains(" bytes>"), "{s}");
            assert!(!s.contains("canary"), "{s}");
        }
    }

    #[test]
    fn a_pseudonym_is_h_colon_and_32_hex_digits() {
        let p = Pseudonymiser::new(&key(1), &[]);
        let h = p.text("alice");
        assert!(is_pseudonym(&h), "{h}");
        assert_eq!(h.len(), 34);
    }

    #[test]
    fn every_spelling_of_a_number_maps_alike() {
        let p = Pseudonymiser::new(&key(1), &[]);
        assert_eq!(p.number("+1 555-123"), p.number("1555123"));
        assert_eq!(p.number("++1555123"), p.number("1555123"));
        assert_ne!(p.number("1555123"), p.number("1555124"));
    }

    #[test]
    fn another_key_gives_other_pseudonyms() {
        let a = Pseudonymiser::new(&key(1), &[]);
        let b = Pseudonymiser::new(&key(2), &[]);
        assert_ne!(a.number("1555123"), b.number("1555123"));
        assert_ne!(
            a.ip("192.0.2.1".parse().expect("ip")),
            b.ip("192.0.2.1".parse().expect("ip"))
        );
    }

    #[test]
    fn pseudonyms_are_never_pseudonymised_twice() {
        let p = Pseudonymiser::new(&key(1), &[]);
        let h = p.number("1555123");
        assert_eq!(p.number(&h), h);
        assert_eq!(p.text(&h), h);
        let ip = p.ip("2001:db8::1".parse().expect("ip"));
        assert!(is_ip_pseudonym(&ip));
        assert!(ip.to_string().starts_with("100::"), "{ip}");
        assert_eq!(p.ip(ip), ip);
    }

    #[test]
    fn only_the_configured_fields_are_replaced_at_write_time() {
        let p = Pseudonymiser::new(&key(1), &[Field::Caller, Field::DstIp]);
        let mut c = crate::store::testutil::full_call();
        let before = c.clone();
        p.apply_call(&mut c);
        assert_eq!(c.caller, p.number(&before.caller));
        assert_eq!(c.dst_ip, p.ip(before.dst_ip));
        assert_eq!(
            (&c.callee, &c.caller_name, &c.asserted_identity, c.src_ip),
            (
                &before.callee,
                &before.caller_name,
                &before.asserted_identity,
                before.src_ip
            )
        );
    }

    #[test]
    fn unknown_field_names_are_refused_with_the_allowed_ones() {
        let err = parse_fields(&["caller", "calee"]).expect_err("typo");
        let text = err.to_string();
        assert!(
            text.contains("calee") && text.contains("asserted_identity"),
            "{text}"
        );
    }

    #[test]
    fn a_new_key_file_is_0600_and_loads_back_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        let (k1, created) = PseudonymKey::load_or_create(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("stat").mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let (k2, created) = PseudonymKey::load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(k1.0, k2.0);
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        PseudonymKey::load_or_create(&path).expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            PseudonymKey::load(&path),
            Err(PrivacyError::KeyPermissions { mode: 0o644, .. })
        ));
    }

    #[test]
    fn a_damaged_key_file_is_refused_without_showing_its_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, "not-a-key-SECRET\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = PseudonymKey::load(&path).expect_err("damaged");
        assert!(matches!(err, PrivacyError::KeyFormat { .. }));
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}
