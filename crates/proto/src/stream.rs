//! Driving the protocol over a byte stream (a QUIC stream in practice), one
//! message per stream direction: write with any tokio `AsyncWrite`; read by
//! feeding the pieces the transport hands out (quinn's zero-copy `read_chunk`). Enabled by the `tokio` feature; the rest of
//! the crate stays sans-IO.

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{
    decode_request_owned, decode_response_owned, encode_request, encode_response, Assembler,
    ErrorReply, ProtoError, Request, Response,
};

/// Why reading a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The transport failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a valid message.
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

impl ReadError {
    /// The reply a server sends for this error.
    pub fn reply(&self) -> ErrorReply {
        match self {
            ReadError::Proto(e) => ErrorReply::new(e.error_code(), e.to_string()),
            ReadError::Io(e) => ErrorReply::new(
                crate::ErrorCode::BadRequest,
                format!("could not read the request: {e}"),
            ),
        }
    }
}

/// Feeds `bytes` (a piece of a stream, e.g. from quinn's zero-copy
/// `read_chunk`) to `assembler`; `Some` once the request is complete.
/// `None` for `bytes` means the stream ended.
pub fn feed_request(
    assembler: &mut Assembler,
    bytes: Option<&[u8]>,
) -> Result<Option<Request>, ReadError> {
    match bytes {
        None => Err(assembler.end_of_stream().into()),
        Some(b) => match assembler.feed(b)? {
            Some((t, payload)) => Ok(Some(decode_request_owned(t, payload)?)),
            None => Ok(None),
        },
    }
}

/// [`feed_request`] for responses (client side).
pub fn feed_response(
    assembler: &mut Assembler,
    bytes: Option<&[u8]>,
) -> Result<Option<Response>, ReadError> {
    match bytes {
        None => Err(assembler.end_of_stream().into()),
        Some(b) => match assembler.feed(b)? {
            Some((t, payload)) => Ok(Some(decode_response_owned(t, payload)?)),
            None => Ok(None),
        },
    }
}

fn invalid(e: ProtoError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Writes one request (client side).
pub async fn write_request<W: AsyncWrite + Unpin>(w: &mut W, request: &Request) -> io::Result<()> {
    w.write_all(&encode_request(request).map_err(invalid)?)
        .await
}

/// Writes one response (server side).
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    response: &Response,
) -> io::Result<()> {
    w.write_all(&encode_response(response).map_err(invalid)?)
        .await
}
