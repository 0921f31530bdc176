//! E-mail over SMTP (lettre; STARTTLS, implicit TLS or plain, with authentication). Each
//! message's `Message-ID` is its delivery's idempotency key, and later e-mails about an
//! incident thread under the first one sent to the same address (`In-Reply-To`,
//! `References`).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{SmtpConfig, SmtpSecurity};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of Message-IDs.
    domain: String,
}

impl Mailer {
    pub fn new(cfg: &SmtpConfig, timeout: Duration) -> Result<Mailer, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|_| format!("{:?} is not an e-mail address", cfg.from))?;
        let builder = match cfg.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
                .map_err(|e| format!("smtp {}: {e}", cfg.host))?,
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                    .map_err(|e| format!("smtp {}: {e}", cfg.host))?
            }
        };
        let mut builder = builder.port(cfg.port).timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            domain: from.email.domain().to_owned(),
            from,
        })
    }

    /// `<key@domain>`: the Message-ID of the delivery with idempotency key `key`.
    pub fn message_id(&self, key: &str) -> String {
        format!("<{key}@{}>", self.domain)
    }

    /// Sends one message; the server's answer on success.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        body: String,
        key: &str,
        thread: Option<&str>,
    ) -> Result<String, String> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| format!("{to:?} is not an e-mail address"))?;
        let mut m = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(self.message_id(key)))
            .header(ContentType::TEXT_PLAIN);
        if let Some(first) = thread {
            let first = self.message_id(first);
            m = m.in_reply_to(first.clone()).references(first);
        }
        let msg = m
            .body(body)
            .map_err(|e| format!("cannot build the e-mail: {e}"))?;
        let resp = self
            .transport
            .send(msg)
            .await
            .map_err(|e| format!("smtp: {e}"))?;
        Ok(resp.message().collect::<Vec<_>>().join(" "))
    }
}
