//! Client dialects: what the client speaks. Every stage reads OpenAI's chat completions; a client
//! that speaks another API (`/messages`: Anthropic's; `/responses`: OpenAI's Responses;
//! `/completions`: OpenAI's legacy text completions) has its request translated before the
//! stages and what the meter writes translated back, errors included. `/embeddings` and
//! `/rerank` are read as they are, as other operations of the same stages. The Pingora adapter
//! calls the functions here and knows no dialect's shape.

pub mod anthropic;
pub mod completions;
pub mod rerank;
pub mod responses;

use bytes::Bytes;

use serde_json::{Map, Value};

use crate::reject::{Kind, Reject};
use crate::stages::request::{ChatRequest, Operation};

/// A 400 in the contract's shape, for a request a dialect cannot translate.
fn bad(message: impl Into<String>) -> Reject {
    Reject::new(Kind::BadRequest, message.into())
}

/// A client's body as a JSON object, or a 400 saying why it is not one: every dialect's first
/// step.
fn object(body: &[u8]) -> Result<Map<String, Value>, Reject> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Invalid JSON body: {e}")))
}

/// The API a client called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// `/chat/completions`.
    #[default]
    OpenAiChat,
    /// `/messages`, Anthropic's Messages API.
    AnthropicMessages,
    /// `/responses`, OpenAI's Responses API.
    OpenAiResponses,
    /// `/completions`, OpenAI's legacy text completions.
    OpenAiCompletions,
    /// `/embeddings`: OpenAI's embeddings API, read as it is.
    OpenAiEmbeddings,
    /// `/rerank`: OpenRouter's rerank API, read as it is.
    Rerank,
}

impl Dialect {
    /// What the request asks of a model.
    pub fn operation(self) -> Operation {
        match self {
            Dialect::OpenAiEmbeddings => Operation::Embeddings,
            Dialect::Rerank => Operation::Rerank,
            _ => Operation::Chat,
        }
    }

    /// The request the stages read, from the body the client sent.
    pub fn request(self, body: Bytes) -> Result<Bytes, Reject> {
        match self {
            Dialect::OpenAiChat | Dialect::OpenAiEmbeddings | Dialect::Rerank => Ok(body),
            Dialect::AnthropicMessages => anthropic::request(&body).map(Bytes::from),
            Dialect::OpenAiResponses => responses::request(&body).map(Bytes::from),
            Dialect::OpenAiCompletions => completions::request(&body).map(Bytes::from),
        }
    }

    /// The whole answer the client reads, from the chat completion the meter wrote (passed on
    /// as it is if it is not one).
    pub fn completion(self, chat: Vec<u8>, request: &ChatRequest<'_>) -> Vec<u8> {
        let translated = match self {
            Dialect::OpenAiChat | Dialect::OpenAiEmbeddings => return chat,
            Dialect::OpenAiCompletions => completions::completion(&chat),
            Dialect::Rerank => rerank::completion(&chat, request),
            Dialect::AnthropicMessages => anthropic::completion(&chat),
            Dialect::OpenAiResponses => responses::completion(&chat, &responses::Echo::of(request)),
        };
        translated.unwrap_or(chat)
    }

    /// The encoder of the client's stream events.
    pub fn stream(self, request: &ChatRequest<'_>) -> Encoder {
        match self {
            Dialect::OpenAiChat | Dialect::OpenAiEmbeddings | Dialect::Rerank => Encoder::Chat,
            Dialect::OpenAiCompletions => Encoder::Completions(Box::default()),
            Dialect::AnthropicMessages => Encoder::Anthropic(Box::default()),
            Dialect::OpenAiResponses => Encoder::Responses(Box::new(
                responses::StreamEncoder::new(responses::Echo::of(request)),
            )),
        }
    }

    /// The refusal's body in this dialect's error shape (OpenRouter's for both OpenAI APIs).
    pub fn error_body(self, reject: &Reject) -> Bytes {
        match self {
            Dialect::OpenAiChat
            | Dialect::OpenAiResponses
            | Dialect::OpenAiCompletions
            | Dialect::OpenAiEmbeddings
            | Dialect::Rerank => reject.body(),
            Dialect::AnthropicMessages => Bytes::from(anthropic::error_body(reject)),
        }
    }
}

/// Turns the meter's chunks into the client's stream events as they come.
pub enum Encoder {
    Chat,
    Anthropic(Box<anthropic::StreamEncoder>),
    Responses(Box<responses::StreamEncoder>),
    Completions(Box<completions::StreamEncoder>),
}

impl Encoder {
    /// What the client reads for `chunks` (whole events, as the meter's relay writes them).
    pub fn render(&mut self, chunks: Vec<u8>) -> Vec<u8> {
        let mut events = Vec::with_capacity(chunks.len() + 256);
        match self {
            Encoder::Chat => return chunks,
            Encoder::Anthropic(e) => e.push(&chunks, &mut events),
            Encoder::Responses(e) => e.push(&chunks, &mut events),
            Encoder::Completions(e) => e.push(&chunks, &mut events),
        }
        events
    }
}
