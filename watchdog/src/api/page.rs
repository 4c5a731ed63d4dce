//! The status page's HTTP edges: `GET /` (HTML), `GET /status.json` (the
//! same view as JSON, for `bgw-watchdog status`) and `GET /events/stream`
//! (server-sent events: the inside of `<main>` each time it changes). Each
//! answers per `[status_page] access`; the work is in `crate::page`.

use super::error::ApiError;
use super::AppState;
use crate::page::{self, html, Denied, Sources};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use std::time::Duration;

/// How often a live stream re-renders without a new snapshot (countdowns,
/// heartbeat checks, which do not publish snapshots).
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    page: Option<usize>,
    tpage: Option<usize>,
    token: Option<String>,
}

fn authorize(app: &AppState, q: &PageQuery, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = q.token.as_deref().or(super::auth::bearer(headers));
    app.page
        .authorize(token, Some(app.admin.token()))
        .map_err(|d| match d {
            Denied::Off => {
                ApiError::not_found("the status page is off (status_page.access = \"off\")")
            }
            Denied::Token => ApiError::unauthorized(
                "the status page needs a token: ?token=<status_page.viewer_token>",
            ),
        })
}

async fn view(app: &AppState, q: &PageQuery) -> Result<page::view::View, ApiError> {
    let facts = app
        .page
        .facts(Sources {
            store: &app.store,
            snapshot: app.monitor.snapshot(),
            live: app.switcher.live(),
            now: app.clock.now(),
        })
        .await
        .map_err(|e| ApiError::internal("the status page could not read the store", e))?;
    let tpage = q.tpage.unwrap_or(1).clamp(1, 10_000);
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    if tpage > 1 {
        let (events, deliveries) = page::older_events(&app.store, tpage)
            .await
            .map_err(|e| ApiError::internal("the status page could not read the store", e))?;
        Ok(app.page.view(
            &facts,
            &app.rollback,
            page,
            Some((tpage, &events, &deliveries)),
        ))
    } else {
        Ok(app.page.view(&facts, &app.rollback, page, None))
    }
}

/// `GET /`.
pub async fn status_page(
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &q, &headers)?;
    let v = view(&app, &q).await?;
    Ok(Html(html::page(&v, q.token.as_deref())).into_response())
}

/// `GET /status.json`.
pub async fn status_json(
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &q, &headers)?;
    Ok(Json(view(&app, &q).await?).into_response())
}

/// `GET /events/stream`: an `page` event with the new inside of `<main>`
/// whenever it changed, checked at each monitor snapshot and every second.
/// Ends when the server shuts down.
pub async fn stream(
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &q, &headers)?;
    struct S {
        app: AppState,
        q: PageQuery,
        snaps: tokio::sync::watch::Receiver<std::sync::Arc<crate::monitor::Snapshot>>,
        stop: tokio::sync::watch::Receiver<bool>,
        last: String,
        first: bool,
    }
    let state = S {
        snaps: app.monitor.subscribe(),
        stop: app.page.stopping(),
        app,
        q,
        last: String::new(),
        first: true,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if !s.first {
                tokio::select! {
                    changed = s.snaps.changed() => if changed.is_err() { return None },
                    _ = tokio::time::sleep(TICK) => {}
                    _ = s.stop.wait_for(|stop| *stop) => return None,
                }
            }
            s.first = false;
            if *s.stop.borrow() {
                return None;
            }
            let Ok(v) = view(&s.app, &s.q).await else {
                continue;
            };
            let fragment = html::fragment(&v, s.q.token.as_deref());
            if fragment != s.last {
                s.last = fragment;
                let event = Event::default().event("page").data(&s.last);
                return Some((Ok::<_, std::convert::Infallible>(event), s));
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
