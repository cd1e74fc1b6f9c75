//! The syntax of the range headers of `/v2`: a blob read's `Range` (RFC 9110 §14.1.2), read
//! into a [`RangeRequest`] that the registry service holds against the blob's size, and an
//! upload chunk's `Content-Range`, read into a [`ChunkRange`].

use crate::error::{Error, Result};
use crate::service::ChunkRange;
use crate::storage::RangeRequest;

/// Reads a chunk's `Content-Range: start-end` (also tolerating the `bytes ` prefix some
/// clients send, and a `/size` suffix).
pub fn content_range(header: &str) -> Result<ChunkRange> {
    let text = header.trim();
    let text = text
        .strip_prefix("bytes ")
        .or_else(|| text.strip_prefix("bytes="))
        .unwrap_or(text);
    let text = text.split('/').next().unwrap_or("");
    let bad = || {
        Error::BlobUploadInvalid(format!(
            "malformed Content-Range '{}'; expected START-END",
            header.escape_default()
        ))
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(ChunkRange { start, end })
}

/// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n`. Anything else is [`RangeRequest::Unsupported`]
/// (answered 416 with the blob's size).
pub fn parse(header: &str) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Unsupported("only 'bytes=' ranges are supported");
    };
    if spec.contains(',') {
        return RangeRequest::Unsupported("multiple ranges are not supported");
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeRequest::Unsupported("malformed range");
    };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        (false, false) => match (number(a), number(b)) {
            (Some(start), Some(end)) => RangeRequest::Bounded { start, end },
            _ => RangeRequest::Unsupported("malformed range"),
        },
        (false, true) => number(a).map_or(RangeRequest::Unsupported("malformed range"), |start| {
            RangeRequest::From { start }
        }),
        (true, false) => number(b).map_or(RangeRequest::Unsupported("malformed range"), |len| {
            RangeRequest::Suffix { len }
        }),
        (true, true) => RangeRequest::Unsupported("malformed range"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ByteRange;

    #[test]
    fn content_ranges() {
        for (header, (start, end)) in [
            ("0-9", (0, 9)),
            ("bytes 10-19/*", (10, 19)),
            ("bytes=5-5", (5, 5)),
        ] {
            let r = content_range(header).unwrap();
            assert_eq!((r.start, r.end), (start, end), "{header}");
        }
        for bad in ["", "9-0", "a-b", "5", "-5"] {
            assert!(
                matches!(content_range(bad), Err(Error::BlobUploadInvalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ranges_are_read_then_held_against_the_size() {
        let bytes = |h: &str| parse(h).resolve(100);
        assert_eq!(bytes("bytes=0-9").unwrap(), ByteRange { start: 0, end: 9 });
        assert_eq!(
            bytes("bytes=90-").unwrap(),
            ByteRange { start: 90, end: 99 }
        );
        assert_eq!(
            bytes("bytes=-10").unwrap(),
            ByteRange { start: 90, end: 99 }
        );
        assert_eq!(
            bytes("bytes=-1000").unwrap(),
            ByteRange { start: 0, end: 99 }
        );
        assert_eq!(
            bytes("bytes=50-1000").unwrap(),
            ByteRange { start: 50, end: 99 }
        );
        for bad in [
            "bytes=100-",
            "bytes=5-2",
            "bytes=-0",
            "items=0-1",
            "bytes=a-b",
            "bytes=0-1,3-4",
            "bytes=-",
        ] {
            assert!(
                matches!(
                    bytes(bad),
                    Err(Error::RangeNotSatisfiable { size: 100, .. })
                ),
                "{bad}"
            );
        }
    }
}
