//! A mock control plane: a real tonic server whose snapshots the test pushes by hand, and which
//! records every ack. Used to feed a dataplane an invalid snapshot. It plays a control plane of
//! before health streaming (no `Subscribe`, no `ReportHealth`), so the dataplane's fallback to
//! `Watch` is exercised too.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use switchyard_proto::config::v1 as pb;
use switchyard_proto::config::v1::config_service_server::{ConfigService, ConfigServiceServer};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct MockController {
    tx: Arc<watch::Sender<Option<pb::Snapshot>>>,
    pub acks: Arc<Mutex<Vec<pb::AckRequest>>>,
}

struct Service(MockController);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::Snapshot, Status>> + Send>>;
type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::ConfigUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigService for Service {
    type WatchStream = SnapshotStream;
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<UpdateStream>, Status> {
        Err(Status::unimplemented("an older control plane"))
    }

    async fn report_health(
        &self,
        _: Request<pb::HealthReport>,
    ) -> Result<Response<pb::HealthReportAck>, Status> {
        Err(Status::unimplemented("an older control plane"))
    }

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let stream = WatchStream::new(self.0.tx.subscribe()).filter_map(|s| s.map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        self.0.acks.lock().unwrap().push(request.into_inner());
        Ok(Response::new(pb::AckResponse {}))
    }
}

impl MockController {
    /// Serves on `addr` until the test ends.
    pub async fn start(addr: SocketAddr) -> MockController {
        let (tx, _) = watch::channel(None);
        let controller = MockController {
            tx: Arc::new(tx),
            acks: Arc::default(),
        };
        let service = ConfigServiceServer::new(Service(controller.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve(addr),
        );
        controller
    }

    pub fn push(&self, snapshot: pb::Snapshot) {
        self.tx.send_replace(Some(snapshot));
    }

    pub fn acks(&self) -> Vec<pb::AckRequest> {
        self.acks.lock().unwrap().clone()
    }
}
