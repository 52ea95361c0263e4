//! The schema the migrations leave, read from the database itself.

use crate::support::spawn_app;

/// Every column that refers to another table leads an index that covers all of its rows.
/// Deleting (on SQLite also re-keying) a referred row looks for the rows that refer to it by
/// that column; without such an index each check reads the whole table. A partial index does
/// not count: the check must see every row. Login once spent 50 ms in such a check, on a table
/// whose only index on the column had become partial.
#[tokio::test]
async fn every_foreign_key_leads_a_full_index() {
    let app = spawn_app().await;
    let unindexed = if app.db.is_postgres() {
        app.db_texts(
            "SELECT c.conrelid::regclass::text || '.' || a.attname AS value \
             FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND NOT EXISTS ( \
                 SELECT 1 FROM pg_index i \
                 WHERE i.indrelid = c.conrelid AND i.indpred IS NULL \
                   AND i.indkey[0] = c.conkey[1]) \
             ORDER BY 1",
        )
    } else {
        app.db_texts(
            "SELECT m.name || '.' || f.\"from\" AS value \
             FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' AND NOT EXISTS ( \
                 SELECT 1 FROM pragma_index_list(m.name) il, pragma_index_info(il.name) ii \
                 WHERE il.partial = 0 AND ii.seqno = 0 AND ii.name = f.\"from\") \
             ORDER BY 1",
        )
    };
    assert!(
        unindexed.is_empty(),
        "foreign keys without a full index led by their column: {unindexed:?}"
    );
}
