//! [`EventStream`]: `GET /v1/events` read as a sequence of [`Received`] messages, resumed after
//! a dropped connection from the last event id seen, so a consumer gets each event the
//! server still keeps once.

use std::{collections::VecDeque, time::Duration};

use reqwest::header;
use sessanger_core::{EventFilter, EventId, wire::EventBody};

use crate::{Client, ClientError, check, percent_encoded};

/// A stream with no byte for this long is taken for dead and opened again: the server sends a
/// heartbeat every 15 s by default.
const SILENCE: Duration = Duration::from_secs(45);

/// One message of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// An event.
    Event(EventBody),
    /// The server had trimmed events after `after` (up to `trimmed_through`) before they
    /// could be delivered: they are lost to this consumer.
    Lost {
        /// Where the stream resumed.
        after: EventId,
        /// The newest id trimming dropped.
        trimmed_through: EventId,
    },
}

/// The events of `GET /v1/events`, one [`EventStream::next`] at a time.
///
/// # Examples
/// ```no_run
/// use sessanger_client::{Client, Received};
/// use sessanger_core::EventFilter;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new("http://127.0.0.1:8090", "audit.secret")?;
/// let filter = EventFilter::default().with_types("deleted,expired")?;
/// let mut events = client.events(filter, None);
/// while let Received::Event(event) = events.next().await? {
///     println!("{} {} of {}", event.id, event.kind, event.user_id);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    filter: EventFilter,
    after: Option<EventId>,
    response: Option<reqwest::Response>,
    buffer: Vec<u8>,
    ready: VecDeque<Received>,
}

impl Client {
    /// `GET /v1/events`: the server's events as `filter` says, after the event `after`
    /// (`EventId(0)`: from the oldest the server keeps; `None`: from what happens next).
    /// Nothing is sent until the first [`EventStream::next`].
    pub fn events(&self, filter: EventFilter, after: Option<EventId>) -> EventStream {
        let (response, buffer, ready) = (None, Vec::new(), VecDeque::new());
        EventStream { client: self.clone(), filter, after, response, buffer, ready }
    }
}

impl EventStream {
    /// The id of the last event received: where the stream resumes.
    pub fn last_event_id(&self) -> Option<EventId> {
        self.after
    }

    /// The next message. A connection that drops (or falls silent) is opened again after the
    /// last event received, so nothing the server keeps is missed or repeated.
    ///
    /// # Errors
    /// [`ClientError::Api`] when the server refuses the stream (`forbidden`,
    /// `events_unavailable`, `invalid_request`); [`ClientError::Transport`] when it cannot be
    /// reached. Calling `next` again after an error tries again from the same place.
    pub async fn next(&mut self) -> Result<Received, ClientError> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                if let Received::Event(event) = &message {
                    self.after = Some(event.id);
                }
                return Ok(message);
            }
            let response = match &mut self.response {
                Some(response) => response,
                None => {
                    self.buffer.clear();
                    self.response.insert(self.connect().await?)
                }
            };
            match tokio::time::timeout(SILENCE, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    self.buffer.extend_from_slice(&bytes);
                    self.parse();
                }
                // Ended, failed or silent: open it again where it stopped.
                Ok(Ok(None) | Err(_)) | Err(_) => self.response = None,
            }
        }
    }

    async fn connect(&self) -> Result<reqwest::Response, ClientError> {
        let mut query = Vec::new();
        if !self.filter.types.is_empty() {
            let types: Vec<&str> = self.filter.types.iter().copied().collect();
            query.push(format!("types={}", percent_encoded(&types.join(","))));
        }
        if let Some(user) = &self.filter.user {
            query.push(format!("user_id={}", percent_encoded(user.as_ref())));
        }
        let path = if query.is_empty() { "/v1/events".to_owned() } else { format!("/v1/events?{}", query.join("&")) };
        let mut request = self.client.request(reqwest::Method::GET, &path);
        request = request.header(header::ACCEPT, "text/event-stream");
        // The stream has no end: the client's request timeout would cut it; silence is
        // watched instead.
        request = request.timeout(Duration::from_secs(365 * 24 * 3600));
        if let Some(after) = self.after {
            request = request.header("Last-Event-ID", after.to_string());
        }
        check(request.send().await?).await
    }

    /// Moves every complete message of the buffer to `ready`.
    fn parse(&mut self) {
        while let Some(end) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end.0).collect();
            self.buffer.drain(..end.1 - end.0);
            if let Some(message) = message(&String::from_utf8_lossy(&block)) {
                self.ready.push_back(message);
            }
        }
    }
}

/// Where the first message ends: (end of its text, end of the blank line after it).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let text = buffer;
    (0..text.len()).find_map(|i| {
        if text[i..].starts_with(b"\n\n") {
            Some((i, i + 2))
        } else if text[i..].starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else {
            None
        }
    })
}

/// One message's fields, as the SSE format spells them; comments (heartbeats) and messages
/// of other kinds give `None`.
fn message(block: &str) -> Option<Received> {
    let (mut event, mut data) = ("message", String::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value,
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    match event {
        "lost" => {
            #[derive(serde::Deserialize)]
            struct Lost {
                after: EventId,
                trimmed_through: EventId,
            }
            let lost: Lost = serde_json::from_str(&data).ok()?;
            Some(Received::Lost { after: lost.after, trimmed_through: lost.trimmed_through })
        }
        _ => serde_json::from_str(&data).ok().map(Received::Event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str =
        r#"{"id":"7","type":"created","at":"2026-12-06T12:00:00.000Z","user_id":"alice","fingerprint":"abc"}"#;

    #[test]
    fn messages_are_read_across_chunks_and_comments_are_skipped() {
        let client = Client::new("http://127.0.0.1:1", "svc.secret").unwrap();
        let mut stream = client.events(EventFilter::default(), None);
        let text =
            format!(": heartbeat\n\nid: 7\nevent: created\ndata: {CREATED}\n\nevent: lost\ndata: {{\"after\":\"1\",");
        stream.buffer.extend_from_slice(text.as_bytes());
        stream.parse();
        let Some(Received::Event(event)) = stream.ready.pop_front() else { panic!("{:?}", stream.ready) };
        assert_eq!((event.id, event.kind.as_str()), (EventId(7), "created"));
        assert!(stream.ready.is_empty(), "the half message waits for its end");
        stream.buffer.extend_from_slice(b"\"trimmed_through\":\"5\"}\r\n\r\n");
        stream.parse();
        assert_eq!(stream.ready.pop_front(), Some(Received::Lost { after: EventId(1), trimmed_through: EventId(5) }));
    }
}
