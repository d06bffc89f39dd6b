//! `warrant.v1.IdentityService`: humans, agents, services and devices. The trait impl only
//! routes each RPC to its body; the bodies are grouped by principal kind, and share the write
//! skeleton in `write` and the replies in `replies`.
//!
//! Each body authenticates the caller, validates the request, builds its command and commits it
//! through [`write::commit_and_read_back`], which reads the written row back.

mod agents;
mod credentials;
mod devices;
mod humans;
mod operators;
pub(crate) mod replies;
mod services;
mod status;
mod write;

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warrant_proto::api::{self, identity_service_server::IdentityService};

use crate::context::Context;

pub struct IdentityApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn register_human(
        &self,
        request: Request<api::RegisterHumanRequest>,
    ) -> Result<Response<api::RegisterHumanResponse>, Status> {
        Ok(Response::new(
            humans::register(&self.context, request).await?,
        ))
    }

    async fn register_humans(
        &self,
        request: Request<api::RegisterHumansRequest>,
    ) -> Result<Response<api::RegisterHumansResponse>, Status> {
        Ok(Response::new(
            humans::register_many(&self.context, request).await?,
        ))
    }

    async fn get_human(
        &self,
        request: Request<api::GetHumanRequest>,
    ) -> Result<Response<api::Human>, Status> {
        Ok(Response::new(humans::read(&self.context, request).await?))
    }

    async fn register_agent(
        &self,
        request: Request<api::RegisterAgentRequest>,
    ) -> Result<Response<api::RegisterAgentResponse>, Status> {
        Ok(Response::new(
            agents::register(&self.context, request).await?,
        ))
    }

    async fn get_agent(
        &self,
        request: Request<api::GetAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        Ok(Response::new(agents::read(&self.context, request).await?))
    }

    async fn list_agents(
        &self,
        request: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        Ok(Response::new(agents::list(&self.context, request).await?))
    }

    async fn register_operator(
        &self,
        request: Request<api::RegisterOperatorRequest>,
    ) -> Result<Response<api::RegisterOperatorResponse>, Status> {
        Ok(Response::new(
            operators::register(&self.context, request).await?,
        ))
    }

    async fn register_service(
        &self,
        request: Request<api::RegisterServiceRequest>,
    ) -> Result<Response<api::RegisterServiceResponse>, Status> {
        Ok(Response::new(
            services::register(&self.context, request).await?,
        ))
    }

    async fn get_service(
        &self,
        request: Request<api::GetServiceRequest>,
    ) -> Result<Response<api::Service>, Status> {
        Ok(Response::new(services::read(&self.context, request).await?))
    }

    async fn update_human(
        &self,
        request: Request<api::UpdateHumanRequest>,
    ) -> Result<Response<api::Human>, Status> {
        Ok(Response::new(humans::update(&self.context, request).await?))
    }

    async fn update_agent(
        &self,
        request: Request<api::UpdateAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        Ok(Response::new(agents::update(&self.context, request).await?))
    }

    async fn update_service(
        &self,
        request: Request<api::UpdateServiceRequest>,
    ) -> Result<Response<api::Service>, Status> {
        Ok(Response::new(
            services::update(&self.context, request).await?,
        ))
    }

    async fn list_humans(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListHumansResponse>, Status> {
        Ok(Response::new(humans::list(&self.context, request).await?))
    }

    async fn list_services(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListServicesResponse>, Status> {
        Ok(Response::new(services::list(&self.context, request).await?))
    }

    async fn register_device(
        &self,
        request: Request<api::RegisterDeviceRequest>,
    ) -> Result<Response<api::Device>, Status> {
        Ok(Response::new(
            devices::register(&self.context, request).await?,
        ))
    }

    async fn update_device(
        &self,
        request: Request<api::UpdateDeviceRequest>,
    ) -> Result<Response<api::Device>, Status> {
        Ok(Response::new(
            devices::update(&self.context, request).await?,
        ))
    }

    async fn get_device(
        &self,
        request: Request<api::GetDeviceRequest>,
    ) -> Result<Response<api::Device>, Status> {
        Ok(Response::new(devices::read(&self.context, request).await?))
    }

    async fn list_devices(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListDevicesResponse>, Status> {
        Ok(Response::new(devices::list(&self.context, request).await?))
    }

    async fn bind_agent_device(
        &self,
        request: Request<api::BindAgentDeviceRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        Ok(Response::new(
            agents::bind_device(&self.context, request).await?,
        ))
    }

    async fn set_status(
        &self,
        request: Request<api::SetStatusRequest>,
    ) -> Result<Response<api::SetStatusResponse>, Status> {
        Ok(Response::new(status::set(&self.context, request).await?))
    }

    async fn add_credential(
        &self,
        request: Request<api::AddCredentialRequest>,
    ) -> Result<Response<api::CredentialResponse>, Status> {
        Ok(Response::new(
            credentials::add(&self.context, request).await?,
        ))
    }

    async fn rotate_credential(
        &self,
        request: Request<api::RotateCredentialRequest>,
    ) -> Result<Response<api::CredentialResponse>, Status> {
        Ok(Response::new(
            credentials::rotate(&self.context, request).await?,
        ))
    }

    async fn remove_credential(
        &self,
        request: Request<api::RemoveCredentialRequest>,
    ) -> Result<Response<api::CredentialResponse>, Status> {
        Ok(Response::new(
            credentials::remove(&self.context, request).await?,
        ))
    }
}
