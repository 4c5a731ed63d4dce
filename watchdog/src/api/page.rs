//! `GET /`: a read-only status page, plain HTML that refreshes itself.

use super::AppState;
use axum::extract::State;
use axum::response::Html;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn status_page(State(app): State<AppState>) -> Html<String> {
    let checks = app.store.list_checks().await.unwrap_or_default();
    let mut rows = String::new();
    for c in &checks {
        rows.push_str(&format!(
            "<tr class=\"{state}\"><td>{name}</td><td>{kind}</td><td>{color}</td><td>{state}</td><td>{reason}</td><td>{last}</td><td>{next}</td></tr>\n",
            name = escape(&c.name),
            kind = c.kind,
            color = c.color.as_deref().unwrap_or(""),
            state = c.state,
            reason = escape(&c.reason),
            last = c.last_signal.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
            next = c.next_deadline.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>bgw watchdog</title><style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}\
         .down td{{background:#f8d0d0}}.late td{{background:#fbeec0}}.up td{{background:#d8f0d8}}</style></head>\
         <body><h1>bgw watchdog</h1><p>times in UTC; refreshes every 5 s</p><table><tr><th>check</th><th>kind</th>\
         <th>color</th><th>state</th><th>reason</th><th>last signal</th><th>next deadline</th></tr>\n{rows}</table></body></html>"
    ))
}
