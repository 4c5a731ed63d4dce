//! The status page as HTML: maud templates compiled into the binary, one
//! small stylesheet (light and dark by `prefers-color-scheme`) and a few
//! lines of script that replace `<main>` with what the live stream sends.
//! Without JavaScript the page is complete and refreshes itself every 10 s.

use super::view::{CheckView, Spark, TargetView, TimelineItem, Tone, View};
use maud::{html, Markup, PreEscaped, DOCTYPE};

const CSS: &str = r#"
:root{--bg:#fff;--fg:#1b1f23;--mute:#6a737d;--line:#e1e4e8;--ok:#1a7f37;--okbg:#dafbe1;--warn:#9a6700;--warnbg:#fff8c5;
--bad:#cf222e;--badbg:#ffebe9;--info:#0969da;--infobg:#ddf4ff;--blue:#0969da;--green:#1a7f37;--card:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#8b949e;--line:#30363d;--ok:#3fb950;--okbg:#12261e;
--warn:#d29922;--warnbg:#272115;--bad:#f85149;--badbg:#3a1618;--info:#58a6ff;--infobg:#0c2d6b;--blue:#58a6ff;--green:#3fb950;--card:#161b22}}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:1200px;margin:0 auto;padding:12px}h1{font-size:18px;margin:4px 0}h2{font-size:15px;margin:18px 0 6px}
.mute{color:var(--mute)}.banner{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:8px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.big{font-size:26px;font-weight:700;text-transform:uppercase}.c-blue{color:var(--blue)}.c-green{color:var(--green)}
.live-blue{border-left:6px solid var(--blue)}.live-green{border-left:6px solid var(--green)}.live-none{border-left:6px solid var(--bad)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--mute);font-size:12px}
.pill{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;font-weight:600}
.t-ok{color:var(--ok)}.t-warn{color:var(--warn)}.t-bad{color:var(--bad)}.t-info{color:var(--info)}.t-muted{color:var(--mute)}
.pill.t-ok{background:var(--okbg)}.pill.t-warn{background:var(--warnbg)}.pill.t-bad{background:var(--badbg)}.pill.t-info{background:var(--infobg)}
tr.row-bad{background:var(--badbg)}tr.row-warn{background:var(--warnbg)}
.bar{display:flex;gap:1px;height:12px;width:120px}.bar i{flex:1}.s-up{background:var(--ok)}.s-down{background:var(--bad)}.s-none{background:var(--line)}
svg.spark{width:120px;height:24px}.spark .lat{fill:none;stroke:var(--info);stroke-width:1.2}.spark .thr{stroke:var(--warn);stroke-dasharray:2 2;stroke-width:.6}
.spark .fail{fill:var(--bad);opacity:.5}.spark .dot{fill:var(--info)}ol.tl{list-style:none;padding:0;margin:0}ol.tl li{padding:3px 0;border-bottom:1px solid var(--line)}
.reason{max-width:420px;overflow-wrap:anywhere}details summary{cursor:pointer}.pager a{margin-right:8px}
"#;

const SCRIPT: &str = r#"(function(){if(!window.EventSource)return;
var es=new EventSource('/events/stream'+location.search),st=function(t){var c=document.getElementById('conn');if(c)c.textContent=t};
es.addEventListener('page',function(e){var m=document.getElementById('live');
var open=[].map.call(m.querySelectorAll('details[open]'),function(d){return d.dataset.k});
m.innerHTML=e.data;open.forEach(function(k){var d=m.querySelector('details[data-k="'+k+'"]');if(d)d.open=true});
st('live');});
es.onerror=function(){st('reconnecting…')};})();"#;

fn tone(t: Tone) -> &'static str {
    match t {
        Tone::Ok => "t-ok",
        Tone::Warn => "t-warn",
        Tone::Bad => "t-bad",
        Tone::Info => "t-info",
        Tone::Muted => "t-muted",
    }
}

/// `?page=..&tpage=..&token=..` for links that keep the viewer's token.
fn query(page: usize, tpage: usize, token: Option<&str>) -> String {
    let mut q = format!("?page={page}&tpage={tpage}");
    if let Some(t) = token {
        q.push_str("&token=");
        q.extend(url::form_urlencoded::byte_serialize(t.as_bytes()));
    }
    q
}

/// The whole page.
pub fn page(view: &View, token: Option<&str>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                noscript { meta http-equiv="refresh" content="10"; }
                title { "bgw — " (view.banner.live.map_or("no live color", |c| c.as_str())) " live" }
                style { (PreEscaped(CSS)) }
            }
            body {
                main #live { (content(view, token)) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}

/// What the live stream sends: the inside of `<main>`.
pub fn fragment(view: &View, token: Option<&str>) -> String {
    content(view, token).into_string()
}

fn content(v: &View, token: Option<&str>) -> Markup {
    let b = &v.banner;
    let live_class = b
        .live
        .map_or("live-none".to_string(), |c| format!("live-{c}"));
    html! {
        h1 { "bgw watchdog " span.mute { "· " (v.now.format("%Y-%m-%d %H:%M:%S UTC")) " · " span #conn { "static" } } }
        section #banner .banner data-live=(b.live.map_or("none", |c| c.as_str())) {
            div.card.(live_class) {
                div.mute { "LIVE" }
                @match b.live {
                    Some(c) => {
                        div.big.(format!("c-{c}")) { (c.as_str()) }
                        div { @if let Some(a) = &b.since_ago { "since " (a) " ago" } @else { "since before the ledger" } }
                    }
                    None => { div.big.t-bad { "undefined" } div.t-bad { (b.live_error.as_deref().unwrap_or("")) } }
                }
            }
            div.card {
                div.mute { "IDLE" }
                @if let Some(c) = b.idle { div.big.(format!("c-{c}")) { (c.as_str()) } }
                div.(tone(b.idle_health.tone)) #idle-health { (b.idle_health.text) }
            }
            div.card {
                div.mute { "VERSIONS" }
                @for side in &b.versions {
                    div {
                        b.(format!("c-{}", side.color)) { (side.color.as_str()) } ": "
                        @if side.versions.is_empty() { span.mute { "no instance up" } }
                        @else { (side.versions.join(", ")) }
                        " " span.pill.(tone(side.health.tone)) { (match side.health.tone { Tone::Ok => "healthy", Tone::Bad => "failing", Tone::Warn => "late", _ => "unknown" }) }
                    }
                }
            }
            div.card #rollback data-rollback=(serde_json::to_value(b.rollback.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) {
                div.mute { "AUTOMATIC ROLLBACK" }
                div.(tone(b.rollback.tone)) { b { (b.rollback.text) } }
                div.mute {
                    @if let Some(w) = &b.rollback.window_remaining { "window: " (w) " left · " }
                    @if let Some(c) = &b.rollback.cooldown_remaining { "cooldown: " (c) " left · " }
                    (b.rollback.rules)
                }
            }
            div.card #last-switch {
                div.mute { "LAST SWITCH" }
                @match &b.last_switch {
                    Some(s) => {
                        div.(if s.ok { "" } else { "t-bad" }) {
                            (s.from.map_or("none", |c| c.as_str())) " → " b { (s.to.as_str()) }
                            " " (s.ago) " ago by " (s.by) @if !s.ok { " (FAILED)" }
                        }
                        div.mute.reason { (s.reason) }
                    }
                    None => { div.mute { "no switch recorded" } }
                }
            }
        }
        h2 {
            "Checks " span.mute { (v.summary.total) " · " }
            span.t-ok { (v.summary.up) " up" } " · " span.t-warn { (v.summary.late) " late" } " · "
            span.t-bad { (v.summary.down) " down" } span.mute { " · " (v.summary.other) " other" }
        }
        table #checks {
            tr { th { "check" } th { "state" } th { "for" } th { "last signal" } th { "next deadline" } th { "instances" } th { "uptime 24h / 7d / 30d" } th { "last 24 h" } th { "reason" } }
            @for c in &v.checks { (check_row(c)) }
        }
        (pager(v.paging.page, v.paging.pages, |p| query(p, v.timeline_page, token), "checks"))
        @if !v.targets.is_empty() {
            h2 { "Probe targets" }
            table #targets {
                tr { th { "observer" } th { "target" } th { "result" } th { "latency" } th { "last hour (threshold dashed)" } th { "measured" } }
                @for t in &v.targets { (target_row(t)) }
            }
        }
        h2 { "Timeline" }
        ol.tl #timeline {
            @for e in &v.timeline { (timeline_item(e)) }
            @if v.timeline.is_empty() { li.mute { "no events yet" } }
        }
        p.pager {
            @if v.timeline_page > 1 { a href=(query(v.paging.page, v.timeline_page - 1, token)) { "← newer events" } }
            @if v.timeline_more { a href=(query(v.paging.page, v.timeline_page + 1, token)) { "older events →" } }
        }
    }
}

fn pager(page: usize, pages: usize, link: impl Fn(usize) -> String, what: &str) -> Markup {
    html! {
        @if pages > 1 {
            p.pager {
                @if page > 1 { a href=(link(page - 1)) { "← previous" } }
                span.mute { (what) " page " (page) " of " (pages) " " }
                @if page < pages { a href=(link(page + 1)) { "next →" } }
            }
        }
    }
}

fn pct(u: Option<f64>) -> String {
    u.map_or("–".into(), |p| {
        if p >= 99.995 {
            "100%".into()
        } else {
            format!("{p:.2}%")
        }
    })
}

fn check_row(c: &CheckView) -> Markup {
    html! {
        tr.(format!("row-{}", c.tone.as_str())).(format!("state-{}", c.state)) data-check=(c.name) {
            td { b { (c.name) } br; span.mute { (c.kind) @if let Some(col) = &c.color { " · " span.(format!("c-{col}")) { (col) } } } }
            td { span.pill.(tone(c.tone)) .state { (c.state) } }
            td { (c.for_) }
            td { (c.last_signal_ago.as_deref().map_or("never".to_string(), |a| format!("{a} ago"))) }
            td { (c.deadline_in.as_deref().unwrap_or("–")) }
            td {
                @if c.instances_total == 0 { span.mute { "–" } } @else {
                    details data-k=(c.name) {
                        summary { (c.instances_up) "/" (c.instances_total) " up" }
                        table {
                            @for i in &c.instances {
                                tr { td { (i.name) } td { (i.version.as_deref().unwrap_or("?")) } td.(tone(i.tone)) { (i.status) } td.mute { (i.last_seen_ago) " ago" } }
                            }
                        }
                        @if c.instances_total > c.instances.len() { span.mute { "+" (c.instances_total - c.instances.len()) " more" } }
                    }
                }
            }
            td { (pct(c.uptime[0])) " / " (pct(c.uptime[1])) " / " (pct(c.uptime[2])) }
            td { div.bar title="each segment is one hour; red: down at some point" { @for s in &c.history { i.(format!("s-{}", serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())) {} } } }
            td.reason { (c.reason) }
        }
    }
}

fn spark(s: &Spark) -> Markup {
    let points: Vec<String> = s.points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    html! {
        svg.spark viewBox="0 0 100 20" preserveAspectRatio="none" role="img" {
            title { "max " (s.max_ms) " ms" }
            @for x in &s.fails { rect.fail x=(x) y="0" width="1.7" height="20" {} }
            line.thr x1="0" x2="100" y1=(s.threshold_y) y2=(s.threshold_y) {}
            @if !points.is_empty() { polyline.lat points=(points.join(" ")) {} }
            @if let Some((x, y)) = s.points.last() { circle.dot cx=(x) cy=(y) r="1.6" {} }
        }
    }
}

fn target_row(t: &TargetView) -> Markup {
    html! {
        tr.(if t.ok { "row-ok" } else { "row-bad" }) data-target=(format!("{}/{}", t.observer, t.target)) {
            td { (t.observer) }
            td { (t.target) @if let Some(c) = t.color { " " span.(format!("c-{c}")) { "(" (c.as_str()) ")" } } }
            td { @if t.ok { span.pill.t-ok { "ok" } } @else { span.pill.t-bad { "failing" } " " span.reason { (t.error.as_deref().unwrap_or("")) } } }
            td { @if let Some(ms) = t.latency_ms { (ms) " ms" } @else { "–" } span.mute { " / " (t.threshold_ms) } }
            td { (spark(&t.spark)) }
            td.mute { (t.ago) " ago" }
        }
    }
}

fn timeline_item(e: &TimelineItem) -> Markup {
    html! {
        li data-event=(e.id) data-kind=(e.kind) {
            span.mute { (e.at.format("%m-%d %H:%M:%S")) " " }
            span.(tone(e.tone)) { (e.text) }
            @for (channel, state) in &e.deliveries {
                " " span.pill.(match state.as_str() { "delivered" | "merged" => "t-ok", "failed" => "t-bad", _ => "t-warn" }) { (channel) ": " (state) }
            }
        }
    }
}
