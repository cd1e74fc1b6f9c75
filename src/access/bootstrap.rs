//! The bootstrap admin, created (or updated) at start-up from the configuration.

use std::io::Write;
use std::path::Path;

use super::Identities;
use crate::auth::password::{generate_password, hash_secret, verify_secret};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::{PolicyDocument, PolicyKind};

/// File in the data dir that receives a generated admin password, once.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";
/// Sid marking the identity policy that makes the bootstrap admin an administrator.
const ADMIN_POLICY_SID: &str = "BerthBootstrapAdmin";

fn admin_policy() -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{ADMIN_POLICY_SID}","Effect":"Allow","Action":"ecr:*","Resource":"*"}}]}}"#
    )
}

async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_secret(&password))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

async fn verifies(password: String, phc: Option<String>) -> Result<bool> {
    let Some(phc) = phc else { return Ok(false) };
    tokio::task::spawn_blocking(move || verify_secret(&password, &phc).unwrap_or(false))
        .await
        .map_err(Error::internal)
}

/// Writes a new file readable by its owner only; never overwrites.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

impl Identities {
    /// Makes sure the bootstrap admin exists: from `admin_user` / `admin_password` (which win on
    /// every start), or with a generated password written once to the data dir. Concurrent starts
    /// on one database create one admin. The password is never logged. Nothing is written when
    /// everything is as configured already, so a server whose disk is full (or whose database
    /// is read-only) still starts and serves pulls.
    pub async fn bootstrap_admin(&self, config: &Config) -> Result<()> {
        let user = config.admin_user.as_str();
        let given = config.admin_password.expose();
        let row = if !given.is_empty() {
            let (row, created) = match self.identity.principal("user", user).await? {
                Some(row) => (row, false),
                None => {
                    self.identity
                        .create_principal_if_missing("user", user, &hash(given.to_owned()).await?)
                        .await?
                }
            };
            if !created && !verifies(given.to_owned(), row.password_hash.clone()).await? {
                self.identity
                    .set_password(row.id, &hash(given.to_owned()).await?)
                    .await?;
                tracing::info!(
                    user,
                    "bootstrap admin password changed from the configuration"
                );
            }
            row
        } else if let Some(row) = self.identity.principal("user", user).await? {
            row
        } else {
            let password = generate_password();
            let (row, created) = self
                .identity
                .create_principal_if_missing("user", user, &hash(password.clone()).await?)
                .await?;
            if created {
                let path = config.data_dir.join(ADMIN_PASSWORD_FILE);
                write_secret_file(&path, &password).map_err(|e| {
                    Error::Internal(format!(
                        "cannot write the admin password to {}: {e}",
                        path.display()
                    ))
                })?;
                tracing::info!(user, file = %path.display(), "bootstrap admin created; its password is in the file");
            }
            row
        };
        let policy = admin_policy();
        PolicyDocument::parse(&policy, PolicyKind::Identity).map_err(Error::internal)?;
        let target = row.id.to_string();
        if self.identity.policy("principal", &target).await?.as_deref() != Some(policy.as_str()) {
            self.identity
                .put_policy("principal", &target, &policy)
                .await?;
        }
        // A renamed admin takes the administrator policy with it.
        if self
            .identity
            .has_marked_policies("principal", ADMIN_POLICY_SID, &target)
            .await?
        {
            self.identity
                .delete_marked_policies("principal", ADMIN_POLICY_SID, &target)
                .await?;
        }
        let key_id = config.admin_access_key_id.as_str();
        let secret = config.admin_secret_access_key.expose();
        if !key_id.is_empty()
            && self
                .identity
                .access_key(key_id)
                .await?
                .map(|(key, stored)| (key.principal_id, stored))
                != Some((row.id, secret.to_owned()))
        {
            self.identity.put_access_key(row.id, key_id, secret).await?;
        }
        Ok(())
    }
}
