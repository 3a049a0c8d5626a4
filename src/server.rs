//! Start-up and the running service: open the store and the keyring (in that order, so a missing
//! identity stops start-up before anything is written), build the app, serve until SIGTERM, and
//! run the keyring maintenance in the background.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::watch;

use crate::audit::Checkpoints;
use crate::config::Config;
use crate::crypto::keyring::{KeyService, Opened};
use crate::domain::{accounts, outreach, schedule, Services};
use crate::store;
use crate::web::{self, metrics::Metrics, AppState};

/// Open the store and keyring for any command that needs case data.
pub async fn open_services(cfg: &Config) -> anyhow::Result<(Services, Vec<String>)> {
    let store = store::open(&cfg.database_url()).await?;
    let mut notices = Vec::new();
    let keys = match KeyService::start(store.clone(), cfg.key_paths(), Utc::now()).await? {
        Opened::Existing(k) => k,
        Opened::Created {
            service,
            identity_created,
        } => {
            if identity_created {
                notices.push(format!(
                    "created a new server identity at {} (mode 0600): back it up on separate media; \
                     without it the data cannot be read",
                    service.paths().identity.display()
                ));
            }
            notices.push(format!(
                "created a new keyring sealed to {}",
                service.paths().recipients.display()
            ));
            service
        }
    };
    if keys.current_recipients()?.len() < 2 {
        notices.push(
            "the keyring has no recovery recipient: add one with `donorcare keys add-recipient age1…` \
             (README: Keys)"
                .into(),
        );
    }
    let mut svc = Services::new(store, Arc::new(keys));
    svc.require_totp = Arc::new(cfg.require_totp.clone());
    svc.attachments_dir = cfg.data_dir.join("attachments");
    svc.schedule = Arc::new(cfg.schedule.clone());
    schedule::seed_plans(&svc, Utc::now()).await?;
    svc.break_glass_for =
        chrono::Duration::from_std(cfg.break_glass_for).context("DONORCARE_BREAK_GLASS_HOURS")?;
    Ok((svc, notices))
}

/// The signed checkpoints of the audit log, with the key derived from the server identity.
pub fn checkpoints(keys: &KeyService, cfg: &Config) -> Checkpoints {
    Checkpoints::new(
        cfg.checkpoint_path(),
        keys.derive_key("donorcare audit checkpoint signing key v1"),
    )
}

pub fn app_state(svc: Services, cfg: &Config) -> anyhow::Result<AppState> {
    app_state_with_clock(svc, cfg, web::system_clock())
}

/// The state with another clock (tests read the pages at a chosen moment).
pub fn app_state_with_clock(
    svc: Services,
    cfg: &Config,
    clock: web::Clock,
) -> anyhow::Result<AppState> {
    let checkpoints = checkpoints(&svc.keys, cfg);
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    Ok(AppState::new(web::Shared {
        secure_cookies: public_url.starts_with("https://"),
        svc,
        templates: Arc::new(web::templates::load(cfg.templates_dir.as_deref())?),
        clock,
        default_timezone: cfg.default_timezone.as_str().into(),
        metrics: Arc::new(Metrics::default()),
        checkpoints: Some(Arc::new(checkpoints)),
        public_url: public_url.into(),
        backups: Arc::new(crate::backup::Status::new(cfg.backups.clone())?),
    }))
}

/// `donorcare serve`.
pub async fn serve(cfg: Config, addr: SocketAddr, demo: bool) -> anyhow::Result<()> {
    // Install the handlers first: a SIGTERM that arrives during start-up must still be graceful.
    let shutdown = shutdown_signal()?;
    let mut cfg = cfg;
    if demo && cfg.schedule.outbox_dir.is_none() {
        let dir = cfg.data_dir.join("outbox");
        println!(
            "donorcare: demo: the file channel writes rendered messages in plaintext to {}",
            dir.display()
        );
        cfg.schedule.outbox_dir = Some(dir);
    }
    let (svc, notices) = open_services(&cfg).await?;
    for n in &notices {
        println!("donorcare: {n}");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    if demo {
        crate::demo::load(&svc, &cfg, Utc::now()).await?;
    }
    if let Some(token) = accounts::issue_setup_link(svc.store.as_ref(), Utc::now()).await? {
        println!(
            "donorcare: no accounts yet. Set the first administrator's password (link works once, for {} h):\n  http://{local}/setup/{}",
            accounts::SETUP_LINK_HOURS,
            token.expose()
        );
    } else {
        println!("donorcare: listening on http://{local} (API at /api/v1, description at /api/v1/openapi.json)");
    }
    let cfg = Config {
        public_url: cfg
            .public_url
            .clone()
            .or_else(|| Some(format!("http://{local}"))),
        ..cfg
    };
    let state = app_state(svc.clone(), &cfg)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let background = tokio::spawn(maintenance(
        svc.clone(),
        state.checkpoints.clone(),
        cfg.key_retire_grace,
        stop_rx.clone(),
    ));
    let channels = Arc::new(outreach::Channels::new(svc.schedule.clone())?);
    let materialiser = tokio::spawn(materialise_loop(svc.clone(), stop_rx.clone()));
    let worker = tokio::spawn(outreach_loop(
        svc.clone(),
        channels.clone(),
        stop_rx.clone(),
    ));
    let backups = state.backups.clone();
    if let Some(next) = backups.next_run() {
        println!(
            "donorcare: scheduled backups to {} (keeping {}), next at {}",
            backups.settings.dir.display(),
            backups.settings.keep,
            next.format("%Y-%m-%d %H:%M UTC")
        );
    }
    let backup_loop = tokio::spawn(crate::backup::scheduled_loop(
        svc.clone(),
        backups,
        stop_rx.clone(),
    ));
    let digests = tokio::spawn(digest_loop(svc.clone(), channels, stop_rx));
    tracing::info!(addr = %local, backend = svc.store.backend(), "serving");
    axum::serve(
        listener,
        web::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    })
    .await
    .context("serving")?;
    let _ = background.await;
    let _ = materialiser.await;
    let _ = worker.await;
    let _ = digests.await;
    let _ = backup_loop.await;
    if let Err(e) = svc.store.checkpoint().await {
        tracing::warn!(error = %e, "folding the write-ahead log at shutdown");
    }
    svc.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Keep every open case's plan materialised up to the horizon: at start, then hourly (a case is
/// taken again once its horizon is a day short, or when its plan changed).
pub async fn materialise_loop(svc: Services, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = schedule::materialise_all(&svc, Utc::now(), 2000).await {
            tracing::warn!(error = %e, "materialising care plans");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Every ten minutes: the coordinators' daily digests, once the day's digest hour has come.
pub async fn digest_loop(
    svc: Services,
    channels: Arc<outreach::Channels>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = crate::domain::tasks::send_digests(&svc, &channels, Utc::now()).await {
            tracing::warn!(error = %e, "daily digests");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deliver due outreach every tick. A tick with nothing due is one indexed read.
pub async fn outreach_loop(
    svc: Services,
    channels: Arc<outreach::Channels>,
    mut stop: watch::Receiver<bool>,
) {
    let owner = crate::domain::new_id();
    let tick = svc.schedule.tick;
    loop {
        let stopping = stop.clone();
        match outreach::run_due(&svc, &channels, &owner, Utc::now, move || {
            *stopping.borrow()
        })
        .await
        {
            Ok(s) if s.claimed > 0 => tracing::info!(
                claimed = s.claimed,
                sent = s.sent,
                held = s.held,
                deferred = s.deferred,
                failed = s.failed,
                cancelled = s.cancelled,
                "outreach delivered"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outreach worker"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    })
}

/// Every few seconds: pick up a rotation made by another process, re-wrap case keys still under
/// an older version, retire versions nothing uses any more, and sign the audit head into the
/// latest-checkpoint file if it moved; every minute and at shutdown, append a checkpoint of the
/// head to the checkpoint file. The first is signed at start-up, so entries of a run that ended
/// without a shutdown checkpoint (a crash, a kill) are covered at once. A tail cut off the log
/// with the head made to agree thus fails `audit verify` unless it is younger than one tick.
pub async fn maintenance(
    svc: Services,
    checkpoints: Option<Arc<Checkpoints>>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::minutes(5));
    let mut last_checkpoint: Option<std::time::Instant> = None;
    let checkpoint = |svc: Services, cps: Option<Arc<Checkpoints>>, history: bool| async move {
        if let Some(c) = cps {
            match c.sign_head(svc.store.as_ref(), Utc::now(), history).await {
                Ok(Some(cp)) => tracing::info!(seq = cp.seq, "audit checkpoint signed"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "audit checkpoint"),
            }
        }
    };
    loop {
        if let Err(e) = key_maintenance_once(&svc.keys, grace).await {
            tracing::warn!(error = %format!("{e:#}"), "keyring maintenance");
        }
        let history = last_checkpoint.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        checkpoint(svc.clone(), checkpoints.clone(), history).await;
        if history {
            last_checkpoint = Some(std::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => {
                checkpoint(svc.clone(), checkpoints.clone(), true).await;
                return;
            }
        }
    }
}

pub async fn key_maintenance_once(
    keys: &KeyService,
    grace: chrono::Duration,
) -> anyhow::Result<()> {
    keys.reload().await?;
    let mut total = 0;
    loop {
        let n = keys.rewrap_batch(500).await?;
        total += n;
        if n == 0 {
            break;
        }
        tracing::info!(
            rewrapped = total,
            version = keys.ring().current,
            "re-wrapping case keys"
        );
    }
    for v in keys.retire_unused(Utc::now(), grace).await? {
        tracing::info!(version = v, "retired keyring version");
    }
    Ok(())
}
