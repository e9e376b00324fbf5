//! How many long-lived streams the gateway holds: WebSocket connections and SSE streams, each
//! capped for the whole gateway and, together, per identity, so that one token (or one leaked
//! token) cannot take every slot.
//!
//! A stream holds a [`Ticket`] for as long as it lives; dropping it frees the slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

/// The caps.
#[derive(Debug, Clone)]
pub struct Caps {
    /// WebSocket connections per gateway (10,000).
    pub websockets: usize,
    /// SSE streams per gateway (10,000).
    pub sse_streams: usize,
    /// WebSocket connections and SSE streams together per identity (500): a household's or a
    /// wall of screens' worth, not a gateway's.
    pub per_identity: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            websockets: 10_000,
            sse_streams: 10_000,
            per_identity: 500,
        }
    }
}

/// Which kind of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `/ws` connection.
    WebSocket,
    /// An SSE stream.
    Sse,
}

/// The streams open now, counted against the [`Caps`].
#[derive(Debug)]
pub struct Admission {
    caps: Caps,
    websockets: AtomicUsize,
    sse: AtomicUsize,
    per_identity: Mutex<HashMap<String, usize>>,
}

/// Why a stream was refused: `503` (the gateway is full) or `429` (this identity is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Full {
    /// 503 or 429.
    pub status: StatusCode,
    /// `too_many_connections` or `too_many_streams`.
    pub code: &'static str,
    /// For a person.
    pub message: String,
}

/// A slot held; freed when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    kind: Kind,
    who: Option<String>,
}

impl Admission {
    /// Nothing open yet.
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            websockets: AtomicUsize::new(0),
            sse: AtomicUsize::new(0),
            per_identity: Mutex::new(HashMap::new()),
        })
    }

    /// The caps.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    fn counter(&self, kind: Kind) -> (&AtomicUsize, usize) {
        match kind {
            Kind::WebSocket => (&self.websockets, self.caps.websockets),
            Kind::Sse => (&self.sse, self.caps.sse_streams),
        }
    }

    /// Open now, of `kind`.
    pub fn open(&self, kind: Kind) -> usize {
        self.counter(kind).0.load(Ordering::Relaxed)
    }

    /// Takes a slot of `kind` for `who` (`None`: everyone is one identity, no auth; only the
    /// gateway's cap applies).
    pub fn admit(self: &Arc<Self>, kind: Kind, who: Option<&str>) -> Result<Ticket, Full> {
        let (counter, cap) = self.counter(kind);
        if counter.fetch_add(1, Ordering::AcqRel) >= cap {
            counter.fetch_sub(1, Ordering::AcqRel);
            let what = match kind {
                Kind::WebSocket => "WebSocket connections",
                Kind::Sse => "SSE streams",
            };
            return Err(Full {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "too_many_connections",
                message: format!(
                    "the gateway serves {cap} {what} at most and all are taken; try again later"
                ),
            });
        }
        if let Some(who) = who {
            let mut per = self.per_identity.lock().unwrap_or_else(|e| e.into_inner());
            let held = per.entry(who.to_owned()).or_insert(0);
            if *held >= self.caps.per_identity {
                drop(per);
                counter.fetch_sub(1, Ordering::AcqRel);
                return Err(Full {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    code: "too_many_streams",
                    message: format!(
                        "{who} holds {} WebSocket connections and SSE streams already, the most one identity may; close some",
                        self.caps.per_identity
                    ),
                });
            }
            *held += 1;
        }
        Ok(Ticket {
            admission: self.clone(),
            kind,
            who: who.map(str::to_owned),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let (counter, _) = self.admission.counter(self.kind);
        counter.fetch_sub(1, Ordering::AcqRel);
        if let Some(who) = &self.who {
            let mut per = self
                .admission
                .per_identity
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(held) = per.get_mut(who) {
                *held -= 1;
                if *held == 0 {
                    per.remove(who);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_gateway_and_per_identity() {
        let admission = Admission::new(Caps {
            websockets: 3,
            sse_streams: 2,
            per_identity: 2,
        });
        let a1 = admission.admit(Kind::WebSocket, Some("a")).unwrap();
        let a2 = admission.admit(Kind::Sse, Some("a")).unwrap();
        let refused = admission.admit(Kind::WebSocket, Some("a")).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            admission.open(Kind::WebSocket),
            1,
            "a refusal holds nothing"
        );
        let b1 = admission.admit(Kind::Sse, Some("b")).unwrap();
        let refused = admission.admit(Kind::Sse, None).unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(a2);
        let a3 = admission.admit(Kind::Sse, Some("a")).unwrap();
        drop((a1, a3, b1));
        assert_eq!(admission.open(Kind::WebSocket), 0);
        assert_eq!(admission.open(Kind::Sse), 0);
        assert!(admission.per_identity.lock().unwrap().is_empty());
        let anyone: Vec<Ticket> = (0..3)
            .map(|_| admission.admit(Kind::WebSocket, None).unwrap())
            .collect();
        assert_eq!(anyone.len(), 3);
    }
}
