//! Customers: `GET /api/v1/customers`, `GET /api/v1/customers/{id}`. Customers are defined in
//! the configuration file (`[[customers]]`), the one source of truth for them: a change
//! through the API is refused (409) with where to make it instead.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::reference::Customer;

#[derive(Serialize)]
pub struct CustomerList {
    pub customers: Vec<Customer>,
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<CustomerList>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(CustomerList {
        customers: s.0.customers.all().to_vec(),
    }))
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Customer>, ApiError> {
    s.0.check_reader(&headers)?;
    s.0.customers
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no customer {id:?}")))
}

/// `POST`, `PUT`, `DELETE`: the configuration file holds customers.
pub async fn change(
    State(s): State<AppState>,
    headers: HeaderMap,
    id: Option<Path<String>>,
) -> Result<Json<Customer>, ApiError> {
    s.0.check_reader(&headers)?;
    Err(match id {
        Some(Path(id)) if s.0.customers.get(&id).is_some() => ApiError::Conflict(format!(
            "customer {id:?} is defined in the configuration file ([[customers]]): change it there and restart"
        )),
        Some(Path(id)) => ApiError::NotFound(format!("no customer {id:?}")),
        None => ApiError::Conflict(
            "customers are defined in the configuration file ([[customers]]): add them there and restart".into(),
        ),
    })
}
