//! Syslog framing on a stream: RFC 6587 octet counting (`LEN SP <PRI>...`) or one message
//! per line, chosen per connection from its first bytes ([`looks_octet_counted`]).
//!
//! # Invariants
//! - No frame holds more than `max` bytes: longer messages are cut there and reported
//!   truncated, the rest of them read and dropped.
//! - A bad length prefix falls back to a newline-framed line that keeps the bytes read so
//!   far (RFC 6587: a receiver may treat it so), never loses them.
//! - Line ends and NULs after a message are not part of it.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// RFC 6587 octet counting is `MSG-LEN SP SYSLOG-MSG` and a syslog message starts with
/// `<PRI>`: only `digits SP <` means octet counting. Plenty of newline-framed logs start
/// with digits too (`081109 203615 148 INFO ...`, `2015-10-18 18:01:47 ...`).
pub fn looks_octet_counted(start: &[u8]) -> bool {
    let digits = start.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=10).contains(&digits)
        && start.get(digits) == Some(&b' ')
        && start.get(digits + 1) == Some(&b'<')
}

/// The first frame of `buf` if it is whole there and well formed, as [`read_frame`] would
/// read it: (message, bytes it takes in `buf`, truncated). `None` leaves everything else
/// (a partial frame, a bad length prefix) to `read_frame`.
pub(super) fn buffered_frame(
    buf: &[u8],
    max: usize,
    octet_counted: bool,
) -> Option<(&[u8], usize, bool)> {
    let (start, end, next) = if octet_counted {
        // Newlines between frames are skipped, as `read_frame` does.
        let skip = buf.iter().take_while(|&&b| b == b'\n').count();
        let digits = buf[skip..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=10).contains(&digits) || buf.get(skip + digits) != Some(&b' ') {
            return None;
        }
        let len: usize = std::str::from_utf8(&buf[skip..skip + digits])
            .ok()?
            .parse()
            .ok()?;
        let start = skip + digits + 1;
        let end = start.checked_add(len).filter(|&e| e <= buf.len())?;
        (start, end, end)
    } else {
        let end = memchr::memchr(b'\n', buf)?;
        (0, end, end + 1)
    };
    let frame = &buf[start..end];
    let truncated = frame.len() > max;
    Some((
        without_newline(&frame[..frame.len().min(max)]),
        next,
        truncated,
    ))
}

/// Reads one frame into `buf`. `Ok(None)` at a clean end of stream; `Ok(Some(truncated))`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
    octet_counted: bool,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    if octet_counted {
        // MSG-LEN SP SYSLOG-MSG; a bad length prefix falls back to a newline-framed line
        // that keeps the bytes read so far.
        let mut len: usize = 0;
        let mut digits = 0;
        loop {
            let avail = r.fill_buf().await?;
            let Some(&b) = avail.first() else {
                return Ok(if digits == 0 { None } else { Some(false) });
            };
            r.consume(1);
            match b {
                b'0'..=b'9' if digits < 10 => {
                    len = len * 10 + usize::from(b - b'0');
                    digits += 1;
                    buf.push(b);
                }
                b' ' if digits > 0 => {
                    buf.clear();
                    return read_exact_bounded(r, buf, len, max).await.map(Some);
                }
                b'\n' if digits == 0 => continue,
                _ => {
                    buf.push(b);
                    if b == b'\n' {
                        buf.pop();
                        return Ok(Some(false));
                    }
                    return read_line_bounded(r, buf, max)
                        .await
                        .map(|t| Some(t.unwrap_or(false)));
                }
            }
        }
    }
    read_line_bounded(r, buf, max).await
}

async fn read_exact_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    max: usize,
) -> std::io::Result<bool> {
    let mut left = len;
    while left > 0 {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = avail.len().min(left);
        let room = max.saturating_sub(buf.len()).min(n);
        buf.extend_from_slice(&avail[..room]);
        r.consume(n);
        left -= n;
    }
    trim_newline(buf);
    Ok(len > max)
}

/// Reads up to `\n`, keeping at most `max` bytes. `None` at end of stream with nothing read.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let mut truncated = false;
    let mut any = !buf.is_empty();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(any.then_some(truncated));
        }
        any = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
            buf.extend_from_slice(&chunk[..room]);
        } else {
            buf.extend_from_slice(chunk);
        }
        r.consume(used);
        if done {
            trim_newline(buf);
            return Ok(Some(truncated));
        }
    }
}

pub(super) fn trim_newline(buf: &mut Vec<u8>) {
    buf.truncate(without_newline(buf).len());
}

/// `frame` without the line ends and NULs some senders put after a message.
fn without_newline(mut frame: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | 0] = frame {
        frame = rest;
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut r = BufReader::new(input);
        let octet = looks_octet_counted(input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Ok(Some(t)) = read_frame(&mut r, &mut buf, max, octet).await {
            out.push((String::from_utf8_lossy(&buf).into_owned(), t));
        }
        out
    }

    /// Frames as `read_messages` reads them: whole ones where they lie, the others with
    /// `read_frame`; up to the end or the first error.
    async fn buffered_then_read(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let octet = looks_octet_counted(input);
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            if let Some((frame, len, t)) = buffered_frame(&input[at..], max, octet) {
                if !frame.is_empty() {
                    out.push((String::from_utf8_lossy(frame).into_owned(), t));
                }
                at += len;
                continue;
            }
            let mut r = BufReader::new(&input[at..]);
            let mut buf = Vec::new();
            let Ok(Some(t)) = read_frame(&mut r, &mut buf, max, octet).await else {
                return out;
            };
            if !buf.is_empty() {
                out.push((String::from_utf8_lossy(&buf).into_owned(), t));
            }
            at = input.len() - r.buffer().len() - r.into_inner().len();
        }
    }

    proptest::proptest! {
        /// Frames parsed in place from the buffer are the frames `read_frame` reads.
        #[test]
        fn buffered_frames_are_read_frames(
            // Octet counted half the time.
            start in proptest::sample::select(vec!["", "3 <", "12 <"]),
            rest in proptest::collection::vec(
                proptest::sample::select(b"0159 <\n\r\0a".to_vec()), 0..64),
            max in 1usize..12,
        ) {
            let input = [start.as_bytes(), &rest].concat();
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let (mut a, b) = rt.block_on(async {
                (frames(&input, max).await, buffered_then_read(&input, max).await)
            });
            // An empty frame is no message.
            a.retain(|(m, _)| !m.is_empty());
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[tokio::test]
    async fn newline_framing_with_truncation() {
        let got = frames(b"<13>a b\r\n<13>0123456789abcdef\nlast", 10).await;
        assert_eq!(
            got,
            vec![
                ("<13>a b".into(), false),
                ("<13>012345".into(), true),
                ("last".into(), false)
            ]
        );
    }

    #[tokio::test]
    async fn octet_counting_with_embedded_newlines() {
        let got = frames(b"11 <13>a\nb c d6 <13>xy13 <13>toolong!!", 12).await;
        assert_eq!(
            got,
            vec![
                ("<13>a\nb c d".into(), false),
                ("<13>xy".into(), false),
                ("<13>toolong!".into(), true)
            ]
        );
    }

    #[test]
    fn only_length_space_pri_is_octet_counting() {
        assert!(looks_octet_counted(b"57 <13>1 - h a - - - m"));
        assert!(!looks_octet_counted(b"081109 203615 148 INFO dfs.DataNode"));
        assert!(!looks_octet_counted(b"2015-10-18 18:01:47,978 INFO"));
        assert!(!looks_octet_counted(b"<13>Nov 22 10:00:00 h a: m"));
        assert!(!looks_octet_counted(b"12345678901 <13>"));
    }

    #[tokio::test]
    async fn a_line_that_starts_with_digits_is_newline_framed() {
        assert_eq!(
            frames(b"081109 203615 148 INFO a\n081109 203616 149 INFO b\n", 100).await,
            vec![
                ("081109 203615 148 INFO a".into(), false),
                ("081109 203616 149 INFO b".into(), false)
            ]
        );
    }

    #[tokio::test]
    async fn half_an_octet_frame_is_an_error_not_a_message() {
        let mut r = BufReader::new(&b"50 <13>short"[..]);
        let mut buf = Vec::new();
        assert!(read_frame(&mut r, &mut buf, 100, true).await.is_err());
    }
}
