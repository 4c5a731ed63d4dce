//! `bgw-demo`: the whole system on loopback, narrated. A real nginx in front
//! of two test apps (blue and green), `bgw-watchdog serve` on an embedded
//! SQLite file, a `bgw-agent` beside each app, `bgw-checker`, `bgw-prober`,
//! a local Slack receiver and a real SMTP server (aiosmtpd). Then it plays
//! the story the product exists for: a toggle, a new color that breaks and
//! is rolled back on its own, a job that never finishes, and the watchdog
//! itself dying and being reported by the prober. Then it keeps running
//! until Ctrl-C, printing every Slack message and email as it arrives, so
//! the newcomer can open the status page, toggle, break a color and watch.
//!
//! Where the Docker engine allows a swarm (`docker swarm init` works, or the
//! node is a manager), blue and green are swarm services running the sample
//! app's images under `bgw-agent` (`bgw_e2e::swarm`), and the story adds a
//! `deploy` to the idle color and a killed task; otherwise (or with
//! `BGW_DEMO_MODE=plain`) they are plain processes. The demo says which.
//!
//! The Slack messages are also appended to `<demo dir>/slack.jsonl` (one
//! payload a line) and every email is a file in the SMTP server's mail
//! directory; `<demo dir>/where.txt` lists every address and path. The demo
//! dir is `$BGW_DEMO_DIR`, else `target/demo`.

use anyhow::Context;
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_e2e::swarm::{app_image, SwarmLock, SwarmOptions, SwarmSystem};
use bgw_e2e::system::{Options, System};
use bgw_e2e::watchdog::JOB_UUID;
use bgw_wire::Color;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROBER_TOKEN: &str = "prober-token-0123456789";

/// `<demo dir>/slack.jsonl`, where [`print_new`] appends each Slack payload.
static SLACK_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn show(out: std::process::Output) {
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        print!("{err}");
    }
    println!("(exit {})", out.status.code().unwrap_or(-1));
}

fn print_new(slack: &SlackReceiver, smtp: &SmtpSink, seen: &mut (usize, usize)) {
    let messages = slack.messages();
    if let Some(file) = SLACK_FILE.get() {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            for m in &messages[seen.0..] {
                let _ = writeln!(f, "{m}");
            }
        }
    }
    for m in &messages[seen.0..] {
        let first = m["text"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        println!("   slack <- {first}");
    }
    seen.0 = messages.len();
    let mails = smtp.messages();
    for m in &mails[seen.1..] {
        println!("   email <- {}", m.subject);
    }
    seen.1 = mails.len();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let demo_dir = std::env::var_os("BGW_DEMO_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/demo"));
    std::fs::create_dir_all(&demo_dir).with_context(|| format!("create {}", demo_dir.display()))?;
    let demo_dir = demo_dir.canonicalize()?;
    let slack_file = demo_dir.join("slack.jsonl");
    std::fs::write(&slack_file, "")?;
    let _ = SLACK_FILE.set(slack_file.clone());
    if std::env::var("BGW_DEMO_MODE").as_deref() != Ok("plain") {
        match SwarmLock::acquire().await {
            Ok(Ok(lock)) => return run_swarm(lock, &demo_dir, &slack_file).await,
            Ok(Err(why)) => say(&format!(
                "mode: plain processes (no docker swarm here: {why})"
            )),
            Err(e) => say(&format!(
                "mode: plain processes (docker swarm refused: {e:#})"
            )),
        }
    } else {
        say("mode: plain processes (BGW_DEMO_MODE=plain)");
    }
    run_plain(&demo_dir, &slack_file).await
}

/// The story on plain processes: the apps, agents and every bgw binary as
/// local processes on loopback.
async fn run_plain(demo_dir: &Path, slack_file: &Path) -> anyhow::Result<()> {
    println!("   nginx, the apps and every bgw binary run as local processes on loopback");
    say("starting: nginx, blue and green apps, watchdog, agents, checker, Slack receiver, SMTP server");
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let channels = format!(
        "[notify]\ngroup_window = \"500ms\"\nrepeat = \"1h\"\n[notify.slack]\nwebhook_url = \"{}\"\n[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
        slack.url(),
        smtp.url()
    );
    let options = Options {
        rollback: Options::rollback_with("cooldown = \"1m\""),
        extra_checks: format!(
            "[[check]]\nname = \"prober\"\nkind = \"reporter\"\nperiod = \"1s\"\ngrace = \"2s\"\ntoken = \"{PROBER_TOKEN}\"\n\
             [[check]]\nname = \"nightly-backup\"\nkind = \"heartbeat\"\nuuid = \"{JOB_UUID}\"\nperiod = \"1h\"\ngrace = \"2s\"\n"
        ),
        extra_tables: channels.clone(),
        ..Options::default()
    };
    let mut system = System::start(options).await.context("start the system")?;
    let dir = tempfile::tempdir()?;
    let prober_config = dir.path().join("prober.toml");
    std::fs::write(
        &prober_config,
        format!(
            "watchdog_url = \"{}\"\ntoken = \"{PROBER_TOKEN}\"\npublic_url = \"http://127.0.0.1:{}/ping\"\ninterval = \"500ms\"\ntimeout = \"1s\"\nsilence_after = \"3s\"\nstate_dir = \"{}\"\n{}",
            system.watchdog.base,
            system.live_port(),
            dir.path().join("prober-state").display(),
            channels.replace("group_window = \"500ms\"\n", "")
        ),
    )?;
    let mut prober = Command::new(bgw_e2e::bin("bgw-prober"))
        .arg("--config")
        .arg(&prober_config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start bgw-prober")?;
    system.watchdog.wait_state("prober", "up").await;
    println!(
        "   watchdog: {}   nginx live port: {}   database: {}",
        system.watchdog.base,
        system.live_port(),
        system.watchdog.db_path().display()
    );
    let mut seen = (0, 0);

    say("bgw-watchdog status");
    show(system.cli(&["status"]));

    say("bgw-watchdog toggle green   (a manual switch: nginx re-rendered, tested, reloaded, verified)");
    show(system.cli(&["toggle", "green", "--reason", "release 1.0.5"]));
    show(system.cli(&["live"]));

    say("green breaks right after the toggle (its /ping now answers 500)");
    system.fixture.green.control("fail").await?;
    let rollback = system
        .wait_event("rollback", Duration::from_secs(20))
        .await?;
    println!("   event: {}", rollback["reason"].as_str().unwrap_or(""));
    system
        .wait_served_by(Color::Blue, Duration::from_secs(10))
        .await?;
    show(system.cli(&["live"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    print_new(&slack, &smtp, &mut seen);

    say("bgw-watchdog rollback status   (latched: no further automatic switch until an operator acts)");
    show(system.cli(&["rollback", "status"]));
    system.fixture.green.control("ok").await?;

    say("a nightly job pings /start and never finishes: down after its grace");
    let http = reqwest::Client::new();
    http.get(format!("{}/ping/{JOB_UUID}/start", system.watchdog.base))
        .send()
        .await?;
    system.watchdog.wait_state("nightly-backup", "down").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&slack, &smtp, &mut seen);

    say("the watchdog itself is killed (kill -9): the prober alerts on its own channels");
    system.watchdog.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !slack
        .messages()
        .iter()
        .any(|m| m["text"].as_str().unwrap_or("").contains("DOWN watchdog"))
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the prober did not alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_new(&slack, &smtp, &mut seen);

    say("the watchdog restarts on the same SQLite file: deadlines and state survive, the prober says UP");
    system.watchdog.start().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !slack
        .messages()
        .iter()
        .any(|m| m["text"].as_str().unwrap_or("").contains("UP watchdog"))
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the prober did not report UP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&slack, &smtp, &mut seen);
    show(system.cli(&["status"]));

    say(&format!(
        "the daily log ({})",
        system.watchdog.log_dir().display()
    ));
    let log = system.watchdog.log_text();
    let interesting: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains(" - OK]") && !l.contains("INFO:") && !l.contains("CONFIG:"))
        .collect();
    for line in interesting.iter().rev().take(25).rev() {
        println!("   {line}");
    }
    println!("   ... and one line per probe, e.g.:");
    for line in log.lines().filter(|l| l.contains(" - OK]")).take(4) {
        println!("   {line}");
    }

    // Ready for the newcomer: rollback re-armed, both colors healthy.
    show(system.cli(&["rollback", "rearm"]));
    let where_text = where_to_look(&system, &prober_config, slack_file, &smtp);
    keep_running(demo_dir, &where_text, &slack, &smtp, &mut seen).await?;
    let _ = prober.kill();
    let _ = prober.wait();
    Ok(())
}

/// Prints (and writes to `where.txt`) where to look, then prints every new
/// Slack message and email until Ctrl-C or SIGTERM.
async fn keep_running(
    demo_dir: &Path,
    where_text: &str,
    slack: &SlackReceiver,
    smtp: &SmtpSink,
    seen: &mut (usize, usize),
) -> anyhow::Result<()> {
    std::fs::write(demo_dir.join("where.txt"), where_text)?;
    say("running: the system stays up until Ctrl-C");
    print!("{where_text}");
    println!(
        "   (this list is also in {})\n   new Slack messages and emails are printed below as they arrive\n",
        demo_dir.join("where.txt").display()
    );
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => print_new(slack, smtp, seen),
        }
    }
    say(&format!(
        "stopping: {} Slack messages, {} emails",
        slack.messages().len(),
        smtp.messages().len()
    ));
    Ok(())
}

/// How many Slack messages so far contain `needle`.
fn count_slack(slack: &SlackReceiver, needle: &str) -> usize {
    slack
        .messages()
        .iter()
        .filter(|m| m["text"].as_str().unwrap_or("").contains(needle))
        .count()
}

/// Waits (up to 30 s) for one more Slack message containing `needle` than
/// the `before` already there.
async fn wait_slack(slack: &SlackReceiver, needle: &str, before: usize) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count_slack(slack, needle) <= before {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no Slack message with {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The story on a real docker swarm: blue and green as swarm services
/// running the sample app's images under bgw-agent.
async fn run_swarm(lock: SwarmLock, demo_dir: &Path, slack_file: &Path) -> anyhow::Result<()> {
    say("mode: docker swarm (blue-service and green-service are swarm services; nginx, watchdog, checker and prober run on the host)");
    println!(
        "   building the images from nothing (deploy/build-images.sh) and creating the services..."
    );
    let mut system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .context("start the system on swarm")?;
    let mut seen = (0, 0);
    println!(
        "   blue: {}  green: {}  (1.0.4; tasks on the host network, ports {} and {})",
        system.blue.name, system.green.name, system.blue.port, system.green.port
    );
    println!("{}\n{}", system.blue.tasks(), system.green.tasks());

    say("bgw-watchdog status");
    show(system.cli(&["status"]));

    say("a green task is killed (docker kill -s KILL): missed heartbeats, DOWN; swarm restarts it, UP");
    let downs = count_slack(&system.slack, "[bgw] DOWN green: 0 of 1");
    let ups = count_slack(&system.slack, "[bgw] UP green: 1 of 1");
    if let Some(id) = system.green.containers().first() {
        bgw_e2e::container::docker(["kill", "--signal", "KILL", id])?;
    }
    wait_slack(&system.slack, "[bgw] DOWN green: 0 of 1", downs).await?;
    wait_slack(&system.slack, "[bgw] UP green: 1 of 1", ups).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&system.slack, &system.smtp, &mut seen);
    println!("{}", system.green.tasks());

    let v5 = app_image("1.0.5");
    say(
        "bgw-watchdog deploy blue 1.0.5   (blue is LIVE: refused, like the original deploy script)",
    );
    show(system.cli(&["deploy", "blue", &v5]));
    say("bgw-watchdog deploy green 1.0.5   (docker service update --image on the idle color)");
    show(system.cli(&["deploy", "green", &v5]));
    println!("{}", system.green.tasks());

    say("bgw-watchdog toggle green");
    show(system.cli(&["toggle", "green", "--reason", "release 1.0.5"]));
    show(system.cli(&["live"]));

    say("1.0.5 breaks in production (green's /ping now answers 500): automatic rollback");
    system.green.admin("fail").await?;
    system
        .wait_event("rollback", None, Duration::from_secs(30))
        .await?;
    system
        .wait_served_by(Color::Blue, Duration::from_secs(10))
        .await?;
    show(system.cli(&["live"]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&system.slack, &system.smtp, &mut seen);
    system.green.admin("ok").await?;

    say("the watchdog is killed (kill -9): the prober alerts on its own channels");
    system.watchdog.kill9();
    wait_slack(&system.slack, "DOWN watchdog", 0).await?;
    print_new(&system.slack, &system.smtp, &mut seen);
    system.watchdog.start().await;
    wait_slack(&system.slack, "UP watchdog", 0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&system.slack, &system.smtp, &mut seen);
    show(system.cli(&["rollback", "rearm"]));

    let cli = format!(
        "{} --config {}",
        bgw_e2e::bin("bgw-watchdog").display(),
        system.watchdog.config_path().display()
    );
    let s = &system.settings;
    let where_text = format!(
        "   status page      {base}/\n\
         \x20  live port        curl -si http://127.0.0.1:{live}/ping   (idle: :{idle})\n\
         \x20  blue / green     http://127.0.0.1:{bp}/ping   http://127.0.0.1:{gp}/ping\n\
         \x20  services         docker service ps {bn}   docker service ps {gn}\n\
         \x20  toggle           {cli} toggle\n\
         \x20  status           {cli} status\n\
         \x20  deploy           {cli} deploy green {bad}   (1.0.6: a release that starts broken)\n\
         \x20  scale            {cli} scale green 3\n\
         \x20  break green      curl -X POST http://127.0.0.1:{gp}/admin/fail   (or /admin/hang, /admin/crash; repair: /admin/ok)\n\
         \x20  kill a task      docker kill $(docker ps -q -f label=com.docker.swarm.service.name={gn})\n\
         \x20  daily log        {log}/\n\
         \x20  Slack messages   {slack}\n\
         \x20  emails           {mail}/<n>.eml\n\
         \x20  watchdog config  {config}\n\
         \x20  nginx config     {nginx}\n",
        base = system.watchdog.base,
        live = s.live_listen,
        idle = s.idle_listen,
        bp = system.blue.port,
        gp = system.green.port,
        bn = system.blue.name,
        gn = system.green.name,
        bad = app_image("1.0.6"),
        log = system.watchdog.log_dir().display(),
        slack = slack_file.display(),
        mail = system.smtp.mail_dir().display(),
        config = system.watchdog.config_path().display(),
        nginx = s.nginx_conf.display(),
    );
    keep_running(
        demo_dir,
        &where_text,
        &system.slack,
        &system.smtp,
        &mut seen,
    )
    .await?;
    println!("   removing the services (and leaving the swarm if the demo created it)...");
    drop(system);
    drop(lock);
    Ok(())
}

/// The addresses, commands and files a newcomer wants while the demo runs.
fn where_to_look(
    system: &System,
    prober_config: &Path,
    slack_file: &Path,
    smtp: &SmtpSink,
) -> String {
    let cli = format!(
        "{} --config {}",
        bgw_e2e::bin("bgw-watchdog").display(),
        system.watchdog.config_path().display()
    );
    let (blue, green) = (system.fixture.blue.port, system.fixture.green.port);
    let s = &system.fixture.settings;
    format!(
        "   status page      {base}/\n\
         \x20  live port        curl -si http://127.0.0.1:{live}/ping   (idle: :{idle})\n\
         \x20  blue / green     http://127.0.0.1:{blue}/ping   http://127.0.0.1:{green}/ping\n\
         \x20  toggle           {cli} toggle\n\
         \x20  status           {cli} status\n\
         \x20  break green      curl -X POST http://127.0.0.1:{green}/control/fail   (repair: /control/ok, crash: /control/exit)\n\
         \x20  break blue       curl -X POST http://127.0.0.1:{blue}/control/fail\n\
         \x20  daily log        {log}/\n\
         \x20  Slack messages   {slack}\n\
         \x20  emails           {mail}/<n>.eml\n\
         \x20  watchdog config  {config}   database {db}\n\
         \x20  prober config    {prober}\n\
         \x20  nginx config     {nginx}   live file {live_file}\n",
        base = system.watchdog.base,
        live = s.live_listen,
        idle = s.idle_listen,
        log = system.watchdog.log_dir().display(),
        slack = slack_file.display(),
        mail = smtp.mail_dir().display(),
        config = system.watchdog.config_path().display(),
        db = system.watchdog.db_path().display(),
        prober = prober_config.display(),
        nginx = s.nginx_conf.display(),
        live_file = s.live_file.display(),
    )
}
