//! Statements typed for their backend: the hot paths run their queries on the concrete
//! connection inside [`DbConnection`], so that diesel's statement cache
//! finds them by type and binds them directly.

use diesel::RunQueryDsl;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;

use super::DbConnection;

/// Runs `$body` with `$c` bound to the concrete connection of the backend (see [`RunTyped`]),
/// for queries whose type depends on the backend (`as_select()` picks it): the body is
/// compiled once per backend.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Runs a query on the concrete connection of its backend, typed for that backend.
///
/// Diesel's `MultiConnection` serialises every query through its own backend first: it
/// renders the query's SQL text on every execution, cached statement or not, and walks the
/// query twice more for its binds. On the hot paths (what every authenticated request, every
/// status read and every write burst runs) that was a large part of a statement's cost
/// (docs/benchmarks.md). These methods run the same query on the `PgConnection` or
/// `SqliteConnection` inside, where the statement cache finds it by type and binds it
/// directly. Each use compiles the query once per backend, so they are kept for hot paths.
pub trait RunTyped: Sized {
    /// [`RunQueryDsl::execute`], typed for the backend.
    fn execute_typed(self, conn: &mut DbConnection) -> diesel::QueryResult<usize>
    where
        Self: RunQueryDsl<PgConnection>
            + RunQueryDsl<SqliteConnection>
            + diesel::query_dsl::methods::ExecuteDsl<PgConnection>
            + diesel::query_dsl::methods::ExecuteDsl<SqliteConnection>,
    {
        match conn {
            DbConnection::Pg(c) => RunQueryDsl::<PgConnection>::execute(self, c),
            DbConnection::Sqlite(c) => RunQueryDsl::<SqliteConnection>::execute(self, c),
        }
    }

    /// [`RunQueryDsl::get_result`], typed for the backend.
    fn get_result_typed<'q, U>(self, conn: &mut DbConnection) -> diesel::QueryResult<U>
    where
        Self: RunQueryDsl<PgConnection>
            + RunQueryDsl<SqliteConnection>
            + diesel::query_dsl::LoadQuery<'q, PgConnection, U>
            + diesel::query_dsl::LoadQuery<'q, SqliteConnection, U>,
    {
        match conn {
            DbConnection::Pg(c) => RunQueryDsl::<PgConnection>::get_result(self, c),
            DbConnection::Sqlite(c) => RunQueryDsl::<SqliteConnection>::get_result(self, c),
        }
    }

    /// [`RunQueryDsl::load`], typed for the backend.
    fn load_typed<'q, U>(self, conn: &mut DbConnection) -> diesel::QueryResult<Vec<U>>
    where
        Self: RunQueryDsl<PgConnection>
            + RunQueryDsl<SqliteConnection>
            + diesel::query_dsl::LoadQuery<'q, PgConnection, U>
            + diesel::query_dsl::LoadQuery<'q, SqliteConnection, U>,
    {
        match conn {
            DbConnection::Pg(c) => RunQueryDsl::<PgConnection>::load(self, c),
            DbConnection::Sqlite(c) => RunQueryDsl::<SqliteConnection>::load(self, c),
        }
    }
}

impl<Q> RunTyped for Q {}

/// A hand-written statement (`diesel::sql_query`) whose text never changes, made cacheable.
///
/// diesel never caches the prepared statement of a `sql_query` (it cannot know that the text
/// is the same each time), so SQLite parses and plans it on every call: perf showed the parser
/// at the top of a read that used one. Wrapped here, the statement is cached under the marker
/// type `M`, which must name this one text and nothing else. diesel's own `UPDATE` is never
/// cached either (a changeset may leave out its `None` fields): a hot one is written here
/// instead (preparing the `UPDATE` that voids an account's older links was 4 % of the
/// writer thread's time in a burst of resets).
///
/// It is cached only when it is loaded (`load`, `get_result`): `execute` hands diesel the
/// query by reference, and diesel's impl for references asks the wrapped query, which
/// refuses. A statement that changes rows therefore ends in `RETURNING` and is loaded.
pub struct Fixed<M, Q> {
    query: Q,
    marker: std::marker::PhantomData<M>,
}

/// Wraps `query`, a `sql_query` with a fixed text, so that its statement is cached under `M`.
pub fn fixed<M: 'static, Q>(query: Q) -> Fixed<M, Q> {
    Fixed {
        query,
        marker: std::marker::PhantomData,
    }
}

impl<M: 'static, Q> diesel::query_builder::QueryId for Fixed<M, Q> {
    type QueryId = M;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M, Q: diesel::query_builder::Query> diesel::query_builder::Query for Fixed<M, Q> {
    type SqlType = Q::SqlType;
}

impl<M, Q, Conn> RunQueryDsl<Conn> for Fixed<M, Q> {}

impl<DB, M, Q> diesel::query_builder::QueryFragment<DB> for Fixed<M, Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}
