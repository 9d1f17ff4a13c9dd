//! Alerts: where an org's negative ratings are announced, and what each channel receives.
//! Pure: rendering here, sending in the app's worker.

use crate::validate::{self, Invalid};
use serde::{Deserialize, Serialize};

/// One place alerts go. Robots are the group-chat webhooks users run (DingTalk, WeCom, Feishu).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// Any HTTP endpoint; receives the alert as JSON.
    Webhook {
        url: String,
    },
    Dingtalk {
        url: String,
    },
    Wecom {
        url: String,
    },
    Feishu {
        url: String,
    },
    /// An e-mail address; sent through the SMTP server in the configuration.
    Email {
        to: String,
    },
    /// A phone number, through an HTTP SMS gateway: `body` is sent to `url` with `{phone}` and
    /// `{text}` replaced (JSON-escaped).
    Sms {
        url: String,
        phone: String,
        body: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    pub channels: Vec<Channel>,
}

fn http_url(field: &str, url: &str) -> Result<(), Invalid> {
    let url = validate::required_text(field, url, 500)?;
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(Invalid::new(
            field,
            "invalid_url",
            format!("'{url}' is not an http(s) URL"),
        ));
    }
    Ok(())
}

impl AlertSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.channels.len() > 20 {
            return Err(Invalid::new(
                "channels",
                "out_of_range",
                "at most 20 channels",
            ));
        }
        for (i, c) in self.channels.iter().enumerate() {
            let f = |name: &str| format!("channels[{i}].{name}");
            match c {
                Channel::Webhook { url }
                | Channel::Dingtalk { url }
                | Channel::Wecom { url }
                | Channel::Feishu { url } => http_url(&f("url"), url)?,
                Channel::Email { to } => {
                    validate::email(&f("to"), to)?;
                }
                Channel::Sms { url, phone, body } => {
                    http_url(&f("url"), url)?;
                    if phone.chars().filter(char::is_ascii_digit).count() < 7
                        || !phone
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
                    {
                        return Err(Invalid::new(
                            &f("phone"),
                            "invalid_phone",
                            format!("'{phone}' is not a phone number"),
                        ));
                    }
                    if !body.contains("{text}") {
                        return Err(Invalid::new(
                            &f("body"),
                            "missing_placeholder",
                            "the SMS body template must contain {text}",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The facts of a negative rating, as they were when it was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NegativeAlert {
    pub rating_id: i64,
    pub follow_up_id: i64,
    pub outlet: String,
    pub window: String,
    pub staff: Option<String>,
    pub employee_no: Option<String>,
    pub label: String,
    pub negative_reason: Option<String>,
    /// Local time at the outlet, `YYYY-MM-DD HH:MM:SS`.
    pub local_time: String,
    /// RFC 3339.
    pub rated_at: String,
    pub today_negative: i64,
    pub today_total: i64,
    /// Masked: alerts travel through third parties.
    pub phone: Option<String>,
}

impl NegativeAlert {
    pub fn share(&self) -> f64 {
        if self.today_total == 0 {
            0.0
        } else {
            self.today_negative as f64 / self.today_total as f64
        }
    }

    /// The alert as one short Chinese text, for robots, SMS and e-mail.
    pub fn text(&self) -> String {
        let staff = match (&self.staff, &self.employee_no) {
            (Some(n), Some(no)) => format!("{n}（工号 {no}）"),
            (Some(n), None) => n.clone(),
            _ => "未上岗".to_string(),
        };
        let mut t = format!(
            "【客评】不满意评价提醒\n网点：{}\n窗口：{}\n柜员：{}\n评价：{}{}\n时间：{}\n今日不满意 {} 次，占今日评价 {:.1}%（共 {} 次）",
            self.outlet,
            self.window,
            staff,
            self.label,
            self.negative_reason.as_deref().map(|r| format!("（{r}）")).unwrap_or_default(),
            self.local_time,
            self.today_negative,
            self.share() * 100.0,
            self.today_total
        );
        if let Some(p) = &self.phone {
            t.push_str(&format!("\n客户留下的电话：{p}"));
        }
        t.push_str(&format!("\n请及时处理待跟进事项 #{}。", self.follow_up_id));
        t
    }
}

/// What goes over the wire to one channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Http {
        url: String,
        body: String,
    },
    Email {
        to: String,
        subject: String,
        body: String,
        attachment: Option<Attachment>,
    },
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("strings serialise");
    quoted[1..quoted.len() - 1].to_string()
}

pub fn render(channel: &Channel, alert: &NegativeAlert) -> Outgoing {
    let text = alert.text();
    let http = |url: &str, body: serde_json::Value| Outgoing::Http {
        url: url.to_string(),
        body: body.to_string(),
    };
    match channel {
        Channel::Webhook { url } => http(
            url,
            serde_json::json!({"event": "negative_rating", "alert": alert, "share": alert.share(), "text": text}),
        ),
        Channel::Dingtalk { url } | Channel::Wecom { url } => http(
            url,
            serde_json::json!({"msgtype": "text", "text": {"content": text}}),
        ),
        Channel::Feishu { url } => http(
            url,
            serde_json::json!({"msg_type": "text", "content": {"text": text}}),
        ),
        Channel::Email { to } => Outgoing::Email {
            to: to.clone(),
            subject: format!("【客评】{} {} 收到不满意评价", alert.outlet, alert.window),
            body: text,
            attachment: None,
        },
        Channel::Sms { url, phone, body } => Outgoing::Http {
            url: url.clone(),
            body: body
                .replace("{phone}", &json_escape(phone))
                .replace("{text}", &json_escape(&text)),
        },
    }
}

/// A file sent with a notice; only e-mail carries it (the others get the link instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    /// The file's bytes, base64 (standard alphabet).
    pub base64: String,
}

/// Any notice the outbox carries besides negative alerts: scheduled reports, grading warnings,
/// reminder digests. Rendered per channel by [`render_notice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What it is about, e.g. `report`, `grading_warning`, `reminders` (the delivery's kind).
    pub kind: String,
    pub subject: String,
    /// Plain text, several lines.
    pub text: String,
    /// Where to read more in keping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

impl Notice {
    /// Subject, text and link in one message, for robots and SMS.
    pub fn full_text(&self) -> String {
        let mut t = format!("【客评】{}\n{}", self.subject, self.text);
        if let Some(l) = &self.link {
            t.push_str(&format!("\n详情：{l}"));
        }
        t
    }
}

/// What one channel receives for a notice. Robots and SMS get the text with the link; a generic
/// webhook gets JSON with the fields apart (and the attachment's name, not its bytes); e-mail gets
/// the attachment.
pub fn render_notice(channel: &Channel, notice: &Notice) -> Outgoing {
    let text = notice.full_text();
    let http = |url: &str, body: serde_json::Value| Outgoing::Http {
        url: url.to_string(),
        body: body.to_string(),
    };
    match channel {
        Channel::Webhook { url } => http(
            url,
            serde_json::json!({
                "event": notice.kind,
                "subject": notice.subject,
                "text": notice.text,
                "link": notice.link,
                "attachment": notice.attachment.as_ref().map(|a| &a.filename),
            }),
        ),
        Channel::Dingtalk { url } | Channel::Wecom { url } => http(
            url,
            serde_json::json!({"msgtype": "text", "text": {"content": text}}),
        ),
        Channel::Feishu { url } => http(
            url,
            serde_json::json!({"msg_type": "text", "content": {"text": text}}),
        ),
        Channel::Email { to } => {
            let mut body = notice.text.clone();
            if let Some(l) = &notice.link {
                body.push_str(&format!("\n\n详情：{l}"));
            }
            Outgoing::Email {
                to: to.clone(),
                subject: format!("【客评】{}", notice.subject),
                body,
                attachment: notice.attachment.clone(),
            }
        }
        Channel::Sms { url, phone, body } => Outgoing::Http {
            url: url.clone(),
            body: body
                .replace("{phone}", &json_escape(phone))
                .replace("{text}", &json_escape(&text)),
        },
    }
}

/// Seconds to wait before retry number `attempt` (1-based): 1, 2, 4… capped at 10 minutes.
pub fn backoff_seconds(attempt: i64) -> i64 {
    (1i64 << (attempt - 1).clamp(0, 10)).min(600)
}

/// After this many failed attempts a delivery is given up (and shown as failed).
pub const MAX_ATTEMPTS: i64 = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> NegativeAlert {
        NegativeAlert {
            rating_id: 9,
            follow_up_id: 3,
            outlet: "北京朝阳支行".into(),
            window: "1号窗口".into(),
            staff: Some("王芳".into()),
            employee_no: Some("1103".into()),
            label: "不满意".into(),
            negative_reason: Some("服务效率".into()),
            local_time: "2026-11-22 09:30:00".into(),
            rated_at: "2026-11-22T01:30:00.000Z".into(),
            today_negative: 2,
            today_total: 40,
            phone: Some("138****5678".into()),
        }
    }

    #[test]
    fn formats_per_channel() {
        let a = alert();
        assert!(a
            .text()
            .contains("今日不满意 2 次，占今日评价 5.0%（共 40 次）"));
        let Outgoing::Http { body, .. } = render(
            &Channel::Dingtalk {
                url: "https://oapi.dingtalk.com/robot/send?access_token=x".into(),
            },
            &a,
        ) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["msgtype"], "text");
        assert!(v["text"]["content"]
            .as_str()
            .unwrap()
            .contains("王芳（工号 1103）"));
        let Outgoing::Http { body, .. } = render(
            &Channel::Feishu {
                url: "https://open.feishu.cn/x".into(),
            },
            &a,
        ) else {
            panic!()
        };
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["content"]["text"]
                .is_string()
        );
        let Outgoing::Http { body, .. } = render(
            &Channel::Webhook {
                url: "http://127.0.0.1:9/x".into(),
            },
            &a,
        ) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["alert"]["outlet"], "北京朝阳支行");
        assert_eq!(v["share"], 0.05);
        let sms = Channel::Sms {
            url: "https://sms.example.cn/send".into(),
            phone: "13800000000".into(),
            body: r#"{"to":"{phone}","msg":"{text}"}"#.into(),
        };
        let Outgoing::Http { body, .. } = render(&sms, &a) else {
            panic!()
        };
        let v: serde_json::Value =
            serde_json::from_str(&body).expect("the template stays valid JSON after escaping");
        assert!(v["msg"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn notices_per_channel() {
        let n = Notice {
            kind: "report".into(),
            subject: "北京分行 日报 2026-11-21".into(),
            text: "评价 10 次，满意率 90.0%".into(),
            link: Some("https://kp.example.cn/stats?org_id=2".into()),
            attachment: Some(Attachment {
                filename: "report.xlsx".into(),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                    .into(),
                base64: "UEsDBA==".into(),
            }),
        };
        let Outgoing::Http { body, .. } = render_notice(
            &Channel::Wecom {
                url: "https://qyapi.weixin.qq.com/x".into(),
            },
            &n,
        ) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["text"]["content"],
            "【客评】北京分行 日报 2026-11-21\n评价 10 次，满意率 90.0%\n详情：https://kp.example.cn/stats?org_id=2"
        );
        let Outgoing::Http { body, .. } = render_notice(
            &Channel::Webhook {
                url: "http://127.0.0.1:9/x".into(),
            },
            &n,
        ) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["event"], "report");
        assert_eq!(v["attachment"], "report.xlsx");
        let Outgoing::Email {
            subject,
            attachment,
            body,
            ..
        } = render_notice(
            &Channel::Email {
                to: "boss@bank.cn".into(),
            },
            &n,
        )
        else {
            panic!()
        };
        assert_eq!(subject, "【客评】北京分行 日报 2026-11-21");
        assert!(body.ends_with("详情：https://kp.example.cn/stats?org_id=2"));
        assert_eq!(attachment.unwrap().filename, "report.xlsx");
    }

    #[test]
    fn validation_and_backoff() {
        let ok = AlertSettings {
            channels: vec![
                Channel::Wecom {
                    url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k".into(),
                },
                Channel::Email {
                    to: "boss@bank.cn".into(),
                },
            ],
        };
        ok.validate().unwrap();
        let bad = AlertSettings {
            channels: vec![Channel::Webhook {
                url: "ftp://x".into(),
            }],
        };
        assert_eq!(bad.validate().unwrap_err().field, "channels[0].url");
        let bad = AlertSettings {
            channels: vec![Channel::Sms {
                url: "https://s".into(),
                phone: "13800000000".into(),
                body: "no placeholder".into(),
            }],
        };
        assert_eq!(bad.validate().unwrap_err().code, "missing_placeholder");
        assert_eq!(
            (backoff_seconds(1), backoff_seconds(2), backoff_seconds(3)),
            (1, 2, 4)
        );
        assert_eq!(backoff_seconds(40), 600);
    }
}
