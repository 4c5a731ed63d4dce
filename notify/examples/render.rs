//! Prints what each channel sends for a DOWN event (the README's examples):
//! the Slack payload, the webhook body and the text body. With an SMTP URL
//! as the first argument it also sends the email there.
//!
//! `cargo run -p bgw-notify --example render [smtp://127.0.0.1:2525]`

use bgw_notify::{Channel, EmailSettings, Kind, Notification};
use bgw_wire::Color;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = Notification {
        event_id: 42,
        kind: Kind::Down,
        check: "blue".into(),
        color: Some(Color::Blue),
        state: "down".into(),
        reason: "no heartbeat for 12s (period 5s, grace 5s)".into(),
        at: "2026-11-26T14:03:20Z".parse()?,
        down_for: None,
        live: Some(Color::Blue),
        from: None,
        to: None,
        members: vec![],
        source: "watchdog".into(),
    };
    println!(
        "--- Slack payload\n{}",
        serde_json::to_string_pretty(&bgw_notify::slack::payload(&n))?
    );
    println!("--- webhook body\n{}", serde_json::to_string_pretty(&n)?);
    println!("--- text body\n{}", n.text());
    if let Some(url) = std::env::args().nth(1) {
        let email =
            EmailSettings::new(url, "bgw <bgw@example.org>", vec!["ops@example.org".into()]);
        Channel::email(&email)?.send(&n).await?;
        println!("--- email sent");
    }
    Ok(())
}
