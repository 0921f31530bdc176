//! E-mail over SMTP (lettre; STARTTLS, implicit TLS or plain, with authentication). Each
//! message's `Message-ID` is its delivery's idempotency key, and later e-mails about an
//! incident thread under the first one sent to the same address (`In-Reply-To`,
//! `References`). A message the first relay does not take goes to the fallback relay, if one
//! is configured, in the same attempt.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{SmtpConfig, SmtpSecurity};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct Mailer {
    /// (host:port, transport), tried in order.
    relays: Vec<(String, Transport)>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    /// The domain of Message-IDs.
    domain: String,
}

impl Mailer {
    pub fn new(cfg: &SmtpConfig, timeout: Duration) -> Result<Mailer, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|_| format!("{:?} is not an e-mail address", cfg.from))?;
        let mut relays = vec![transport(
            &cfg.host,
            cfg.port,
            cfg.security,
            cfg.username.as_ref().zip(cfg.password.as_ref()),
            timeout,
        )?];
        if let Some(f) = &cfg.fallback {
            relays.push(transport(
                &f.host,
                f.port,
                f.security,
                f.username.as_ref().zip(f.password.as_ref()),
                timeout,
            )?);
        }
        let reply_to = cfg
            .reply_to
            .as_ref()
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|_| format!("reply_to {r:?} is not an e-mail address"))
            })
            .transpose()?;
        Ok(Mailer {
            relays,
            reply_to,
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
        if let Some(r) = &self.reply_to {
            m = m.reply_to(r.clone());
        }
        if let Some(first) = thread {
            let first = self.message_id(first);
            m = m.in_reply_to(first.clone()).references(first);
        }
        let msg = m
            .body(body)
            .map_err(|e| format!("cannot build the e-mail: {e}"))?;
        let mut errors = Vec::new();
        for (name, t) in &self.relays {
            match t.send(msg.clone()).await {
                Ok(resp) => {
                    return Ok(format!(
                        "{name}: {}",
                        resp.message().collect::<Vec<_>>().join(" ")
                    ));
                }
                Err(e) => errors.push(format!("smtp {name}: {e}")),
            }
        }
        Err(errors.join("; "))
    }
}

/// A relay's transport, named `host:port`.
fn transport(
    host: &str,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<(&String, &String)>,
    timeout: Duration,
) -> Result<(String, Transport), String> {
    let builder = match security {
        SmtpSecurity::None => Transport::builder_dangerous(host),
        SmtpSecurity::Tls => Transport::relay(host).map_err(|e| format!("smtp {host}: {e}"))?,
        SmtpSecurity::Starttls => {
            Transport::starttls_relay(host).map_err(|e| format!("smtp {host}: {e}"))?
        }
    };
    let mut builder = builder.port(port).timeout(Some(timeout));
    if let Some((u, p)) = credentials {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok((format!("{host}:{port}"), builder.build()))
}
