//! The reference data in force: customers and assets from the configuration file (read-only
//! through the API) and from the database (created, changed and deleted through the API and
//! CSV import). Readers (routing, deadlines, the API) take a snapshot; a change through the
//! API reloads it at once, and every collector reloads it periodically, so collectors
//! sharing PostgreSQL see each other's changes.
//!
//! # Invariants
//! - The configuration wins: a database row with an id the configuration defines is ignored
//!   (and cannot be written through the API).
//! - A write is checked against what is in force before it is stored: a bad field is named,
//!   an unknown customer is refused, an asset id must match the configured format.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::assets::{Asset, AssetChange, AssetFormat, Assets};
use super::{Bad, Customer, Customers};
use crate::incidents::IncidentsConfig;
use crate::incidents::deadlines::Deadlines;

/// A value many readers share and a reload replaces whole.
#[derive(Debug)]
pub struct Shared<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(RwLock::new(Arc::new(value))))
    }

    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

/// Where an object is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The configuration file: read-only through the API.
    Config,
    /// The database: managed through the API.
    Api,
}

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("{0}")]
    Invalid(Bad),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("reference database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Imported {
    pub created: usize,
    pub updated: usize,
}

pub struct Directory {
    configured: Vec<Customer>,
    configured_assets: Vec<Asset>,
    incidents: IncidentsConfig,
    pub format: AssetFormat,
    customers: Shared<Customers>,
    assets: Shared<Assets>,
    deadlines: Shared<Deadlines>,
}

fn invalid(field: &str, message: impl Into<String>) -> RefError {
    RefError::Invalid(Bad {
        field: field.into(),
        message: message.into(),
    })
}

fn config_conflict(what: &str, id: &str, table: &str) -> RefError {
    RefError::Conflict(format!(
        "{what} {id:?} is defined in the configuration file ({table}): change it there and restart"
    ))
}

impl Directory {
    /// From the configuration alone (checked; the error names the key); [`Directory::reload`]
    /// adds the database's objects.
    pub fn new(
        customers: &[Customer],
        assets: &super::assets::AssetsConfig,
        incidents: &IncidentsConfig,
    ) -> Result<Directory, (&'static str, String)> {
        let list = Customers::new(customers.to_vec()).map_err(|e| ("customers", e))?;
        let format = AssetFormat::new(&assets.id_format).map_err(|e| ("assets.id_format", e))?;
        for a in &assets.list {
            a.check(&format, &list)
                .map_err(|b| ("assets.list", format!("asset {:?}: {b}", a.id)))?;
        }
        let deadlines = Deadlines::new(incidents, &list)?;
        let set = Assets::new(assets.list.clone()).map_err(|e| ("assets.list", e))?;
        Ok(Directory {
            configured: customers.to_vec(),
            configured_assets: assets.list.clone(),
            incidents: incidents.clone(),
            format,
            customers: Shared::new(list),
            assets: Shared::new(set),
            deadlines: Shared::new(deadlines),
        })
    }

    /// The customers in force, shared with routing.
    pub fn customers(&self) -> Shared<Customers> {
        self.customers.clone()
    }

    /// The deadlines in force (the customers' own tables included), shared with the store.
    pub fn deadlines(&self) -> Shared<Deadlines> {
        self.deadlines.clone()
    }

    pub fn assets(&self) -> Arc<Assets> {
        self.assets.get()
    }

    /// The assets in force, shared with the store (an incident's assets).
    pub fn shared_assets(&self) -> Shared<Assets> {
        self.assets.clone()
    }

    /// Where customer `id` is defined, if anywhere.
    pub fn customer_source(&self, id: &str) -> Option<Source> {
        if self.configured.iter().any(|c| c.id == id) {
            Some(Source::Config)
        } else {
            self.customers.get().get(id).map(|_| Source::Api)
        }
    }

    pub fn asset_source(&self, id: &str) -> Option<Source> {
        if self.configured_assets.iter().any(|a| a.id == id) {
            Some(Source::Config)
        } else {
            self.assets.get().get(id).map(|_| Source::Api)
        }
    }

    /// Reads the database's objects and puts them in force beside the configuration's.
    /// Rows that no longer pass the checks (or shadow a configured id) are left out, logged.
    pub async fn reload(&self, pool: &AnyPool) -> Result<(), sqlx::Error> {
        let mut customers = self.configured.clone();
        for r in sqlx::query("SELECT id, body FROM customers ORDER BY id")
            .fetch_all(pool)
            .await?
        {
            let id: String = r.try_get("id")?;
            let body: String = r.try_get("body")?;
            if customers.iter().any(|c| c.id == id) {
                continue;
            }
            match serde_json::from_str::<Customer>(&body)
                .map_err(|e| e.to_string())
                .and_then(|c| c.check().map(|()| c).map_err(|b| b.to_string()))
            {
                Ok(c) => customers.push(c),
                Err(e) => tracing::error!(customer = %id, error = %e, "stored customer left out"),
            }
        }
        let list = match Customers::new(customers) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "stored customers left out");
                Customers::new(self.configured.clone()).unwrap_or_default()
            }
        };
        let mut assets = self.configured_assets.clone();
        for r in sqlx::query("SELECT id, body FROM assets ORDER BY id")
            .fetch_all(pool)
            .await?
        {
            let id: String = r.try_get("id")?;
            let body: String = r.try_get("body")?;
            if assets.iter().any(|a| a.id == id) {
                continue;
            }
            match serde_json::from_str::<Asset>(&body) {
                Ok(a) => assets.push(a),
                Err(e) => tracing::error!(asset = %id, error = %e, "stored asset left out"),
            }
        }
        match Deadlines::new(&self.incidents, &list) {
            Ok(d) => self.deadlines.set(d),
            Err((_, e)) => tracing::error!(error = %e, "customers' deadlines left as they were"),
        }
        self.customers.set(list);
        self.assets
            .set(Assets::new(assets).unwrap_or_else(|_| Assets::default()));
        Ok(())
    }

    /// Every customer in force, with where it is defined.
    pub fn list_customers(&self) -> Vec<(Customer, Source)> {
        self.customers
            .get()
            .all()
            .iter()
            .map(|c| {
                let src = if self.configured.iter().any(|k| k.id == c.id) {
                    Source::Config
                } else {
                    Source::Api
                };
                (c.clone(), src)
            })
            .collect()
    }

    /// Stores customer `c` (new when `replace` is `None`, else replacing that id), checked.
    pub async fn put_customer(
        &self,
        pool: &AnyPool,
        c: &Customer,
        replace: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RefError> {
        c.check().map_err(RefError::Invalid)?;
        match (replace, self.customer_source(&c.id)) {
            (_, Some(Source::Config)) => {
                return Err(config_conflict("customer", &c.id, "[[customers]]"));
            }
            (None, Some(Source::Api)) => {
                return Err(RefError::Conflict(format!(
                    "customer {:?} exists: PUT /api/v1/customers/{} changes it",
                    c.id, c.id
                )));
            }
            (Some(id), _) if id != c.id => {
                return Err(invalid(
                    "id",
                    format!("{:?} is not the id in the path ({id:?})", c.id),
                ));
            }
            (Some(id), None) => return Err(RefError::NotFound(format!("no customer {id:?}"))),
            _ => {}
        }
        let mut tx = pool.begin().await?;
        upsert_customer(&mut tx, c, actor, now).await?;
        tx.commit().await?;
        self.reload(pool).await?;
        Ok(())
    }

    pub async fn delete_customer(&self, pool: &AnyPool, id: &str) -> Result<(), RefError> {
        match self.customer_source(id) {
            Some(Source::Config) => return Err(config_conflict("customer", id, "[[customers]]")),
            None => return Err(RefError::NotFound(format!("no customer {id:?}"))),
            Some(Source::Api) => {}
        }
        if let Some(a) = self.assets.get().all().find(|a| a.customer == id) {
            return Err(RefError::Conflict(format!(
                "customer {id:?} has assets ({:?}, ...): delete or move them first",
                a.id
            )));
        }
        sqlx::query("DELETE FROM customers WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        self.reload(pool).await?;
        Ok(())
    }

    /// Imports customers from CSV ([`super::import`]): every row is checked first; one bad
    /// row (named by line and column) or a configured id imports nothing.
    pub async fn import_customers(
        &self,
        pool: &AnyPool,
        csv: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Imported, RefError> {
        let rows = super::import::customers(csv).map_err(RefError::Invalid)?;
        let mut out = Imported::default();
        for (line, c) in &rows {
            if self.customer_source(&c.id) == Some(Source::Config) {
                return Err(RefError::Conflict(format!(
                    "line {line}: customer {:?} is defined in the configuration file ([[customers]])",
                    c.id
                )));
            }
        }
        let mut tx = pool.begin().await?;
        for (_, c) in &rows {
            if self.customer_source(&c.id).is_some() {
                out.updated += 1;
            } else {
                out.created += 1;
            }
            upsert_customer(&mut tx, c, actor, now).await?;
        }
        tx.commit().await?;
        self.reload(pool).await?;
        Ok(out)
    }

    /// Stores asset `a` (new when `replace` is `None`), checked, and records the change.
    pub async fn put_asset(
        &self,
        pool: &AnyPool,
        a: &Asset,
        replace: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RefError> {
        a.check(&self.format, &self.customers.get())
            .map_err(RefError::Invalid)?;
        let action = match (replace, self.asset_source(&a.id)) {
            (_, Some(Source::Config)) => {
                return Err(config_conflict("asset", &a.id, "[[assets.list]]"));
            }
            (None, Some(Source::Api)) => {
                return Err(RefError::Conflict(format!(
                    "asset {:?} exists: PUT /api/v1/assets/{} changes it",
                    a.id, a.id
                )));
            }
            (Some(id), _) if id != a.id => {
                return Err(invalid(
                    "id",
                    format!("{:?} is not the id in the path ({id:?})", a.id),
                ));
            }
            (Some(id), None) => return Err(RefError::NotFound(format!("no asset {id:?}"))),
            (Some(_), Some(Source::Api)) => "updated",
            (None, None) => "created",
        };
        let body = serde_json::to_string(a).map_err(|e| invalid("body", e.to_string()))?;
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO assets (id, customer, body, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, body = excluded.body,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&a.id)
        .bind(&a.customer)
        .bind(&body)
        .bind(now.timestamp_millis())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        AssetChange::record(&mut tx, &a.id, action, actor, now, Some(&body)).await?;
        tx.commit().await?;
        self.reload(pool).await?;
        Ok(())
    }

    pub async fn delete_asset(
        &self,
        pool: &AnyPool,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RefError> {
        match self.asset_source(id) {
            Some(Source::Config) => return Err(config_conflict("asset", id, "[[assets.list]]")),
            None => return Err(RefError::NotFound(format!("no asset {id:?}"))),
            Some(Source::Api) => {}
        }
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        AssetChange::record(&mut tx, id, "deleted", actor, now, None).await?;
        tx.commit().await?;
        self.reload(pool).await?;
        Ok(())
    }
}

async fn upsert_customer(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: &Customer,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), RefError> {
    let body = serde_json::to_string(c).map_err(|e| invalid("body", e.to_string()))?;
    sqlx::query(
        "INSERT INTO customers (id, body, updated_at, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at,
             updated_by = excluded.updated_by",
    )
    .bind(&c.id)
    .bind(body)
    .bind(now.timestamp_millis())
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
