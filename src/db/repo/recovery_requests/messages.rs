//! The `recovery_request_messages` table: the thread between the requester and support, and
//! support's internal notes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::recovery_request_messages;
use crate::db::{DbConnection, on_backend};
use crate::domain::{AccountId, MessageId, MessageKind, RecoveryMessage, RequestId};

/// A message or internal note, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_request_messages)]
struct MessageRow {
    id: String,
    request_id: String,
    kind: String,
    author_id: Option<String>,
    body: String,
    created_at: NaiveDateTime,
}

impl MessageRow {
    fn into_domain(self) -> QueryResult<RecoveryMessage> {
        let kind = MessageKind::parse(&self.kind).ok_or_else(|| {
            tracing::error!(
                recovery_request.id = self.request_id.as_str(),
                "stored message kind does not parse"
            );
            diesel::result::Error::DeserializationError(
                format!("message {} has an unknown kind", self.id).into(),
            )
        })?;
        Ok(RecoveryMessage {
            id: MessageId::from_stored(self.id),
            request_id: RequestId::from_stored(self.request_id),
            kind,
            author_id: self.author_id.map(AccountId::from_stored),
            body: self.body,
            created_at: utc(self.created_at),
        })
    }
}

/// Stores a message or note.
pub fn insert_message(conn: &mut DbConnection, message: &RecoveryMessage) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        let row = MessageRow {
            id: message.id.as_str().to_owned(),
            request_id: message.request_id.as_str().to_owned(),
            kind: message.kind.as_str().to_owned(),
            author_id: message.author_id.as_ref().map(|a| a.as_str().to_owned()),
            body: message.body.clone(),
            created_at: naive(message.created_at),
        };
        diesel::insert_into(recovery_request_messages::table)
            .values(&row)
            .execute(conn)
            .map(|_| ())
    })
}

/// The request's messages, oldest first; notes only when `with_notes`.
///
/// Two fixed statements rather than one boxed query: diesel finds a boxed query in its cache
/// only by rendering its SQL again on every call, and the requester's status view runs this on
/// every read.
pub fn messages(
    conn: &mut DbConnection,
    request_id: &RequestId,
    with_notes: bool,
) -> QueryResult<Vec<RecoveryMessage>> {
    let rows = on_backend!(conn, |conn| {
        let of_request = recovery_request_messages::table
            .filter(recovery_request_messages::request_id.eq(request_id.as_str()))
            .order((
                recovery_request_messages::created_at.asc(),
                recovery_request_messages::id.asc(),
            ))
            .select(MessageRow::as_select());
        if with_notes {
            of_request.load(conn)?
        } else {
            of_request
                .filter(recovery_request_messages::kind.ne(MessageKind::Note.as_str()))
                .load(conn)?
        }
    });
    rows.into_iter().map(MessageRow::into_domain).collect()
}
