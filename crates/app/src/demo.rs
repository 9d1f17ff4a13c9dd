//! The demo organisation for `--demo`: a head office, 2 branches, 6 outlets with 3 windows and a
//! keypad each, roles and staff,
//! made through the same store calls (and so the same checks and audit trail) as the UI, and a
//! month of generated ratings behind them.

use keping_domain::auth;
use keping_store::accounts::{self, AssignmentInput, NewUser, RoleInput};
use keping_store::evaluation::{self, NewWindow};
use keping_store::history::{HistoryPlan, HistoryWindow};
use keping_store::org::{self, NewOrg, OrgFilter};
use keping_store::{Db, Sql};

/// The demo's windows come with this many days of ratings, so statistics have something to show.
const HISTORY_DAYS: u32 = 31;

/// (name, code) of an org.
type NameCode = (&'static str, &'static str);

const BRANCHES: &[(&str, &str, &[NameCode])] = &[
    (
        "北京分行",
        "BJ",
        &[
            ("北京朝阳支行", "BJ-CY"),
            ("北京海淀支行", "BJ-HD"),
            ("北京西城支行", "BJ-XC"),
        ],
    ),
    (
        "上海分行",
        "SH",
        &[
            ("上海浦东支行", "SH-PD"),
            ("上海徐汇支行", "SH-XH"),
            ("上海静安支行", "SH-JA"),
        ],
    ),
];

const NAMES: &[&str] = &[
    "王芳", "李娜", "张伟", "刘洋", "陈静", "杨帆", "赵敏", "黄磊", "周婷", "吴昊", "徐丽", "孙强",
    "马超", "朱琳", "胡军", "郭佳", "何涛", "林雪", "高峰", "罗燕", "郑凯", "梁爽", "谢娟", "宋涛",
    "唐欣", "许诺", "韩梅", "冯刚", "邓颖", "曹阳",
];

/// Loads the demo once. Returns the password shared by the demo accounts, or None if already loaded.
pub async fn load(db: &Db) -> anyhow::Result<Option<String>> {
    let (admin_id,) = Sql::new("SELECT u.id FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id WHERE r.builtin = 1 ORDER BY u.id LIMIT 1")
        .fetch_one::<(i64,), _>(&db.pool)
        .await?;
    let admin = accounts::scope_of(db, &accounts::holder(db, admin_id).await?).await?;
    let existing = org::list(
        db,
        &admin,
        &OrgFilter {
            q: Some("BJ-CY".into()),
            ..Default::default()
        },
        1,
        None,
    )
    .await?;
    if !existing.items.is_empty() {
        return Ok(None);
    }
    let root = org::list(db, &admin, &OrgFilter::default(), 1, None)
        .await?
        .items
        .remove(0);
    let perms = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let branch_role = accounts::create_role(
        db,
        &admin,
        RoleInput {
            name: "分行管理层".into(),
            permissions: perms(&[
                "org.view",
                "user.view",
                "user.manage",
                "audit.view",
                "monitor.view",
                "stats.view",
                "stats.export",
                "negative.view",
                "followup.handle",
            ]),
            data_level: "org_and_children".into(),
        },
    )
    .await?;
    let outlet_role = accounts::create_role(
        db,
        &admin,
        RoleInput {
            name: "网点负责人".into(),
            permissions: perms(&[
                "org.view",
                "user.view",
                "monitor.view",
                "stats.view",
                "negative.view",
                "followup.handle",
            ]),
            data_level: "org".into(),
        },
    )
    .await?;
    let clerk_role = accounts::create_role(
        db,
        &admin,
        RoleInput {
            name: "柜员".into(),
            permissions: perms(&["stats.view"]),
            data_level: "self".into(),
        },
    )
    .await?;

    let password = auth::generate_password();
    let hash = tokio::task::spawn_blocking({
        let p = password.clone();
        move || auth::hash_password(&p)
    })
    .await?;
    let mut names = NAMES.iter().cycle();
    let mut history = Vec::new();
    for (bi, (branch_name, branch_code, outlets)) in BRANCHES.iter().enumerate() {
        let branch = org::create(
            db,
            &admin,
            NewOrg {
                name: branch_name.to_string(),
                code: branch_code.to_string(),
                parent_id: Some(root.id),
                kind: Some("branch".into()),
                timezone: None,
            },
        )
        .await?;
        let prefix = branch_code.to_lowercase();
        let manager = accounts::create_user(
            db,
            &admin,
            NewUser {
                username: format!("{prefix}01"),
                password_hash: hash.clone(),
                name: names.next().expect("cycle").to_string(),
                employee_no: Some(format!("{}0001", bi + 1)),
                org_id: branch.id,
                position: Some("分行行长".into()),
                phone: None,
                email: None,
                manager_id: None,
                roles: vec![AssignmentInput {
                    role_id: branch_role.id,
                    org_id: branch.id,
                }],
            },
        )
        .await?;
        for (oi, (outlet_name, outlet_code)) in outlets.iter().enumerate() {
            let outlet = org::create(
                db,
                &admin,
                NewOrg {
                    name: outlet_name.to_string(),
                    code: outlet_code.to_string(),
                    parent_id: Some(branch.id),
                    kind: Some("outlet".into()),
                    timezone: None,
                },
            )
            .await?;
            let mut windows = Vec::new();
            for w in 1..=3 {
                let window = evaluation::create_window(
                    db,
                    &admin,
                    NewWindow {
                        org_id: outlet.id,
                        name: format!("{w}号窗口"),
                        code: format!("{outlet_code}-W{w}"),
                    },
                )
                .await?;
                let (terminal, _) =
                    evaluation::create_terminal(db, &admin, window.id, "keypad", Some("评价器"))
                        .await?;
                windows.push(HistoryWindow {
                    window_id: window.id,
                    org_id: outlet.id,
                    terminal_id: terminal.id,
                    business_type_id: None,
                    timezone: outlet.timezone.clone(),
                    staff: Vec::new(),
                });
            }
            let mut head = None;
            let mut clerks = Vec::new();
            for si in 0..4 {
                let is_head = si == 0;
                let seq = 2 + oi * 4 + si;
                let user = accounts::create_user(
                    db,
                    &admin,
                    NewUser {
                        username: format!("{prefix}{seq:02}"),
                        password_hash: hash.clone(),
                        name: names.next().expect("cycle").to_string(),
                        employee_no: Some(format!("{}{:03}", bi + 1, seq + 100)),
                        org_id: outlet.id,
                        position: Some(if is_head { "网点负责人" } else { "柜员" }.into()),
                        phone: Some(format!("1380013{:04}", bi * 100 + seq)),
                        email: None,
                        manager_id: if is_head { Some(manager.id) } else { head },
                        roles: vec![AssignmentInput {
                            role_id: if is_head {
                                outlet_role.id
                            } else {
                                clerk_role.id
                            },
                            org_id: outlet.id,
                        }],
                    },
                )
                .await?;
                if is_head {
                    head = Some(user.id);
                } else {
                    clerks.push(user.id);
                }
            }
            for w in &mut windows {
                w.staff = clerks.clone();
            }
            history.extend(windows);
        }
    }
    keping_store::history::generate(
        db,
        &history,
        &HistoryPlan {
            days: HISTORY_DAYS,
            until: keping_domain::now_millis(),
            services_per_day: 30.0,
            seed: 2026,
        },
        |_, _| {},
    )
    .await?;
    Ok(Some(password))
}
