//! Start-up and shutdown of one server: open storage, build services, serve HTTP (and,
//! with `federation.listen`, HTTPS on a second listener).

use std::{net::SocketAddr, sync::Arc};

use axum::serve::{Listener as _, ListenerExt as _};
use myelin_config::Config;
use myelin_storage::Database;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    error::{Error, Result},
    router,
    service::{self, Services},
    tls::{self, TlsListener},
};

pub struct Server;

/// A running server. Dropping it does not stop it; call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    federation_addr: Option<SocketAddr>,
    services: Arc<Services>,
    stop: watch::Sender<bool>,
    serving: JoinHandle<std::io::Result<()>>,
    federation_serving: Option<JoinHandle<std::io::Result<()>>>,
    /// The media repository's clean-up task (expired pending uploads and URL previews).
    media_sweep: JoinHandle<()>,
}

impl Server {
    /// Opens the database, builds the services and starts serving on `config.listen`
    /// (port 0 picks a free port; see [`ServerHandle::local_addr`]). With federation
    /// enabled and `federation.listen` set, the same endpoints are also served over TLS
    /// there (see [`ServerHandle::federation_addr`]).
    pub async fn start(config: Config) -> Result<ServerHandle> {
        let config = Arc::new(config);
        let federation_listen = federation_listen_addr(&config)?;
        let db = Database::open_rocksdb(&config.database_path, &service::catalog())?;
        let services = Arc::new(Services::build(config.clone(), db)?);
        // Loaded (or generated) before binding anything, so a bad certificate fails fast.
        let federation_tls = match federation_listen {
            Some(_) => Some(tls::server_config(&config)?),
            None => None,
        };
        let listener = TcpListener::bind(config.listen_addr())
            .await
            .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", config.listen)))?;
        let local_addr = listener.local_addr().map_err(|e| Error::internal(e.to_string()))?;
        let federation_listener = match (federation_listen, federation_tls) {
            (Some(addr), Some(tls)) => {
                let tcp = TcpListener::bind(addr).await.map_err(|e| {
                    Error::internal(format!("cannot listen on {addr} (federation.listen): {e}"))
                })?;
                Some(TlsListener::new(tcp, tls).map_err(|e| Error::internal(e.to_string()))?)
            }
            _ => None,
        };
        let federation_addr = federation_listener
            .as_ref()
            .map(|listener| listener.local_addr())
            .transpose()
            .map_err(|e| Error::internal(e.to_string()))?;

        // Background work starts once nothing can fail any more: its tasks hold the database,
        // which a failed start must release.
        // Resumes delivery of what was queued for other servers before a restart.
        if config.federation.enabled {
            services.sender.start();
        }
        services.presence.start();
        services.typing.start();
        let media_sweep = crate::service::media::sweep::spawn(services.clone());
        let router = router::build(services.clone());
        let (stop, stopped) = watch::channel(false);
        let federation_serving = federation_listener.map(|listener| {
            // `tap_io` also provides the `ConnectInfo<SocketAddr>` the router expects.
            let listener = listener.tap_io(|tls| {
                let _ = tls.get_ref().0.set_nodelay(true);
            });
            let app = router.clone().into_make_service_with_connect_info::<SocketAddr>();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await
            })
        });
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let mut stopped = stopped;
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(?federation_addr, %local_addr, server_name = %config.server_name, "Myelin is listening");
        Ok(ServerHandle { local_addr, federation_addr, services, stop, serving, federation_serving, media_sweep })
    }
}

/// `federation.listen` as a socket address, when federation is enabled and it is set.
fn federation_listen_addr(config: &Config) -> Result<Option<SocketAddr>> {
    let federation = &config.federation;
    let Some(listen) = federation.listen.as_deref().filter(|_| federation.enabled) else {
        return Ok(None);
    };
    listen.parse().map(Some).map_err(|_| {
        Error::internal(format!(
            "invalid federation.listen {listen:?}: expected an IP address and port"
        ))
    })
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The federation (TLS) listener's address, when one was started.
    pub fn federation_addr(&self) -> Option<SocketAddr> {
        self.federation_addr
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Stops accepting connections, lets in-flight requests finish, then flushes storage.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let federation = async {
            match self.federation_serving {
                Some(serving) => Some(serving.await),
                None => None,
            }
        };
        let (main, federation) = tokio::join!(self.serving, federation);
        for (listener, ended) in [("HTTP", Some(main)), ("federation", federation)] {
            match ended {
                None | Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    tracing::warn!(error = %e, "{listener} server ended with an error")
                }
                Some(Err(e)) => tracing::warn!(error = %e, "{listener} server task failed"),
            }
        }
        // Its workers hold the database; they must be gone before it can be reopened.
        self.services.sender.shutdown().await;
        self.services.presence.shutdown().await;
        self.services.typing.shutdown().await;
        self.media_sweep.abort();
        let _ = self.media_sweep.await;
        self.services.db.flush()?;
        tracing::info!("Myelin stopped");
        Ok(())
    }
}
