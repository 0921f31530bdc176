//! Customers: `GET /api/v1/customers`, `GET /api/v1/customers/{id}`, `POST
//! /api/v1/customers` (201), `PUT /api/v1/customers/{id}`, `DELETE /api/v1/customers/{id}`,
//! and `POST /api/v1/customers/import` (a CSV body: all rows or none). Customers defined in
//! the configuration file are read-only here (409 saying so). `GET /api/v1/agents/customers`
//! (an agent, with its token): every customer's prefixes and agents, which agents attribute
//! events with.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::reference::Customer;
use crate::reference::directory::{Imported, Source};

#[derive(Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub customer: Customer,
    /// `config` (read-only here) or `api`.
    pub source: Source,
}

#[derive(Serialize)]
pub struct CustomerList {
    pub customers: Vec<Listed>,
}

fn listed((customer, source): (Customer, Source)) -> Listed {
    Listed { customer, source }
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<CustomerList>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(CustomerList {
        customers: s
            .0
            .directory
            .list_customers()
            .into_iter()
            .map(listed)
            .collect(),
    }))
}

/// What agents attribute events with: the customers in force that have prefixes or agents.
pub async fn for_agent(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<vigil_schema::customer::CustomerList>, ApiError> {
    s.0.agent_for(&headers)?;
    let all = s.0.directory.customers().get();
    Ok(Json(vigil_schema::customer::CustomerList {
        customers: all
            .all()
            .iter()
            .filter(|c| !c.prefixes.is_empty() || !c.agents.is_empty())
            .map(|c| vigil_schema::customer::CustomerSpace {
                id: c.id.clone(),
                prefixes: c.prefixes.clone(),
                agents: c.agents.clone(),
            })
            .collect(),
    }))
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    s.0.directory
        .list_customers()
        .into_iter()
        .find(|(c, _)| c.id == id)
        .map(|c| Json(listed(c)))
        .ok_or_else(|| ApiError::NotFound(format!("no customer {id:?}")))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request("bad_customer", e.body_text()))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    b: Result<Json<Customer>, JsonRejection>,
) -> Result<(StatusCode, Json<Listed>), ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let c = body(b)?;
    s.0.directory
        .put_customer(s.0.incidents.pool(), &c, None, &actor, Utc::now())
        .await
        .map_err(|e| ApiError::reference(e, "bad_customer"))?;
    tracing::info!(customer = %c.id, %actor, "customer created");
    Ok((StatusCode::CREATED, Json(listed((c, Source::Api)))))
}

pub async fn replace(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<Customer>, JsonRejection>,
) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let c = body(b)?;
    s.0.directory
        .put_customer(s.0.incidents.pool(), &c, Some(&id), &actor, Utc::now())
        .await
        .map_err(|e| ApiError::reference(e, "bad_customer"))?;
    tracing::info!(customer = %c.id, %actor, "customer changed");
    Ok(Json(listed((c, Source::Api))))
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    s.0.directory
        .delete_customer(s.0.incidents.pool(), &id)
        .await
        .map_err(|e| ApiError::reference(e, "bad_customer"))?;
    tracing::info!(customer = %id, %actor, "customer deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/customers/import` with a CSV body.
pub async fn import(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Imported>, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("bad_csv", "the CSV is not UTF-8"))?;
    let done =
        s.0.directory
            .import_customers(s.0.incidents.pool(), text, &actor, Utc::now())
            .await
            .map_err(|e| ApiError::reference(e, "bad_csv"))?;
    tracing::info!(created = done.created, updated = done.updated, %actor, "customers imported");
    Ok(Json(done))
}
