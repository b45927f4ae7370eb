//! SIP over SCTP (RFC 4168): each SIP message is one SCTP user message, carried in DATA
//! chunks (RFC 9260 §3.3.1). Unfragmented user messages (B and E flags both set) are handed
//! on; fragmented ones are counted and dropped (SIP messages fit one chunk in practice).
//! Reads headers only; never copies or allocates.

/// Chunk type of DATA.
const DATA: u8 = 0;
/// Beginning and ending fragment flags of a DATA chunk.
const BEGIN_END: u8 = 0x03;

/// Calls `each` with the user data of every unfragmented DATA chunk of an SCTP packet and
/// returns how many fragmented DATA chunks were skipped; `Err` when the packet is cut short.
pub fn data_chunks<'a>(packet: &'a [u8], mut each: impl FnMut(&'a [u8])) -> Result<u64, ()> {
    // Common header: ports (4), verification tag (4), checksum (4).
    let mut rest = packet.get(12..).ok_or(())?;
    let mut fragmented = 0;
    while rest.len() >= 4 {
        let (ty, flags) = (rest[0], rest[1]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 4 || len > rest.len() {
            return Err(());
        }
        if ty == DATA {
            // TSN (4), stream id (2), stream sequence (2), payload protocol id (4).
            let data = rest.get(16..len).ok_or(())?;
            if flags & BEGIN_END == BEGIN_END {
                each(data);
            } else {
                fragmented += 1;
            }
        }
        // Chunks are padded to 4 bytes.
        let padded = (len + 3) & !3;
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    Ok(fragmented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfragmented_data_chunks_are_handed_on_and_fragments_counted() {
        let mut p = vec![0u8; 12];
        let chunk = |flags: u8, data: &[u8]| {
            let mut c = vec![0, flags];
            c.extend_from_slice(&((16 + data.len()) as u16).to_be_bytes());
            c.extend_from_slice(&[0; 12]);
            c.extend_from_slice(data);
            while c.len() % 4 != 0 {
                c.push(0);
            }
            c
        };
        p.extend(chunk(3, b"SIP/2.0 200 OK"));
        p.extend(chunk(2, b"part"));
        let mut got = Vec::new();
        let skipped = data_chunks(&p, |d| got.push(d.to_vec())).expect("packet");
        assert_eq!(got, vec![b"SIP/2.0 200 OK".to_vec()]);
        assert_eq!(skipped, 1);
    }
}
