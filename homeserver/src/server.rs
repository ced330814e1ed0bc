//! Start-up and shutdown of one server: open storage, build services, serve HTTP.

use std::{net::SocketAddr, sync::Arc};

use myelin_config::Config;
use myelin_storage::Database;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    error::{Error, Result},
    router,
    service::{self, Services},
};

pub struct Server;

/// A running server. Dropping it does not stop it; call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    services: Arc<Services>,
    stop: watch::Sender<bool>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens the database, builds the services and starts serving on `config.listen`
    /// (port 0 picks a free port; see [`ServerHandle::local_addr`]).
    pub async fn start(config: Config) -> Result<ServerHandle> {
        let config = Arc::new(config);
        let db = Database::open_rocksdb(&config.database_path, &service::catalog())?;
        let services = Arc::new(Services::build(config.clone(), db)?);
        let listener = TcpListener::bind(config.listen_addr())
            .await
            .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", config.listen)))?;
        let local_addr = listener.local_addr().map_err(|e| Error::internal(e.to_string()))?;
        let app = router::build(services.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, mut stopped) = watch::channel(false);
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(%local_addr, server_name = %config.server_name, "Myelin is listening");
        Ok(ServerHandle { local_addr, services, stop, serving })
    }
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Stops accepting connections, lets in-flight requests finish, then flushes storage.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        match self.serving.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
        }
        self.services.db.flush()?;
        tracing::info!("Myelin stopped");
        Ok(())
    }
}
