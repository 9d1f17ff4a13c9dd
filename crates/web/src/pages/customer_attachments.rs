//! 附件 on the customer card: upload, download and remove a customer's files.

use super::customers::draw_card_with;
use super::{error_page, FormError, Shell};
use crate::api::customer_attachments::{attach, download};
use crate::auth::PageCaller;
use crate::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use keping_store::customers::attachments as store;

pub async fn add(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let added = attach(&state, &caller.scope, id, multipart).await;
    match added {
        Ok(_) => Redirect::to(&format!(
            "/customers/{id}?saved=attachment_added#attachments"
        ))
        .into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "attachment", e);
            draw_card_with(&state, &caller, id, Vec::new(), None, error).await
        }
    }
}

pub async fn get(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((id, attachment_id)): Path<(i64, i64)>,
) -> Response {
    match store::get(&state.db, &caller.scope, id, attachment_id).await {
        Ok((a, data)) => download(&a, data),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((id, attachment_id)): Path<(i64, i64)>,
) -> Response {
    match store::delete(&state.db, &caller.scope, id, attachment_id).await {
        Ok(()) => Redirect::to(&format!(
            "/customers/{id}?saved=attachment_deleted#attachments"
        ))
        .into_response(),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}
