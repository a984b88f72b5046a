//! A consumer of the wallet's events, for teams writing the other side of
//! the relay: a durable JetStream pull consumer that prints each event and
//! acknowledges it. Restarted, it goes on after the last event it
//! acknowledged (the server keeps its place under the durable name).
//!
//! ```text
//! cargo run --features relay --example consume_events -- \
//!     [--url nats://127.0.0.1:4222] [--stream WALLET_EVENTS] \
//!     [--durable consume-events-example] [--subject 'wallet.events.>'] [--max N]
//! ```
//!
//! Each message's body is the event object of `GET /api/v1/wallets/events`
//! ([`FeedEvent`]); its `Nats-Msg-Id` header is the event id and its
//! `Wallet-Sequence` header the event's place in the outbox. The relay
//! publishes in sequence order; a consumer that must apply each event
//! exactly once keeps the highest sequence it applied (in the same
//! transaction as its own change) and skips anything at or below it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures::StreamExt as _;
use wallet::core::FeedEvent;
use wallet::relay::SEQUENCE_HEADER;

/// The longest wait for the stream to appear (the relay creates it).
const STREAM_WAIT: Duration = Duration::from_secs(60);
/// The pause between two looks for the stream.
const STREAM_POLL: Duration = Duration::from_millis(500);

struct Options {
    url: String,
    stream: String,
    durable: String,
    subject: Option<String>,
    max: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
        stream: wallet::relay::nats::STREAM_DEFAULT.to_owned(),
        durable: "consume-events-example".to_owned(),
        subject: None,
        max: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => options.url = value,
            "--stream" => options.stream = value,
            "--durable" => options.durable = value,
            "--subject" => options.subject = Some(value),
            "--max" => options.max = Some(value.parse().map_err(|_| "--max is a count")?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

/// The stream, once the relay has created it.
async fn stream(
    context: &jetstream::Context,
    name: &str,
) -> Result<jetstream::stream::Stream, String> {
    let deadline = tokio::time::Instant::now() + STREAM_WAIT;
    loop {
        match context.get_stream(name).await {
            Ok(stream) => return Ok(stream),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("no stream {name}: {error}"))
            }
            Err(_) => tokio::time::sleep(STREAM_POLL).await,
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let client = async_nats::connect(options.url.as_str())
        .await
        .map_err(|error| format!("cannot connect to {}: {error}", options.url))?;
    let context = jetstream::new(client);
    let stream = stream(&context, &options.stream).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &options.durable,
            pull::Config {
                durable_name: Some(options.durable.clone()),
                ack_policy: AckPolicy::Explicit,
                filter_subject: options.subject.clone().unwrap_or_default(),
                ..pull::Config::default()
            },
        )
        .await
        .map_err(|error| format!("cannot create the consumer: {error}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| format!("cannot read: {error}"))?;
    let mut seen = 0_u64;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|error| format!("cannot read: {error}"))?;
        let sequence = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(SEQUENCE_HEADER))
            .map_or("?", |value| value.as_str());
        match serde_json::from_slice::<FeedEvent>(&message.payload) {
            Ok(event) => println!(
                "{sequence} {} {} user {} version {}: {}",
                message.subject, event.id, event.user_id, event.version, event.data
            ),
            Err(error) => eprintln!("{sequence} {}: not an event ({error})", message.subject),
        }
        message
            .ack()
            .await
            .map_err(|error| format!("cannot acknowledge: {error}"))?;
        seen += 1;
        if options.max.is_some_and(|max| seen >= max) {
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let result = match options() {
        Ok(options) => run(options).await,
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        eprintln!("consume_events: {error}");
        std::process::exit(1);
    }
}
