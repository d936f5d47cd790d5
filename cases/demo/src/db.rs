//! MySQL: the schema of the demo and the few queries the services run.
//!
//! `demo_products` is the price list (seeded with two products; test
//! suites add their own), `demo_orders` holds one row per order. Amounts
//! are exact decimals: the code works in cents and MySQL stores
//! `DECIMAL(10,2)`.

use anyhow::{Context, Result};
use mysql_async::prelude::*;
use mysql_async::{Opts, Pool, Value};
use serde::{Deserialize, Serialize};

/// The statements that create the schema when it is missing.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS demo_products (
        sku   VARCHAR(32)   NOT NULL PRIMARY KEY,
        name  VARCHAR(100)  NOT NULL,
        price DECIMAL(10,2) NOT NULL
    )",
    "INSERT IGNORE INTO demo_products (sku, name, price) VALUES
        ('A-100', 'Coffee mug', 12.50),
        ('B-200', 'Desk lamp', 99.99)",
    "CREATE TABLE IF NOT EXISTS demo_orders (
        id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        order_no   VARCHAR(32)   NOT NULL UNIQUE,
        sku        VARCHAR(32)   NOT NULL,
        qty        INT           NOT NULL,
        user       VARCHAR(64)   NOT NULL,
        status     VARCHAR(16)   NOT NULL,
        notified   TINYINT       NOT NULL DEFAULT 0,
        created_at DATETIME(3)   NOT NULL,
        amount     DECIMAL(10,2) NOT NULL,
        KEY demo_orders_user (user)
    )",
];

/// One order, as the API returns it and the cache holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub order_no: String,
    pub sku: String,
    pub qty: u32,
    pub user: String,
    pub status: String,
    pub notified: bool,
    /// Exact decimal text, e.g. `"22.50"`.
    pub amount: String,
    /// Local time, MySQL's text: `2026-11-03 14:05:09.123`.
    pub created_at: String,
}

/// Connects (over TCP even for 127.0.0.1) and creates the schema if missing.
pub async fn connect(url: &str) -> Result<Pool> {
    let url = if url.contains("prefer_socket") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&prefer_socket=false")
    } else {
        format!("{url}?prefer_socket=false")
    };
    let opts = Opts::from_url(&url).context("invalid MySQL URL")?;
    let pool = Pool::new(opts);
    let mut conn = pool
        .get_conn()
        .await
        .context("cannot connect to MySQL (is it running? see scripts/services.sh)")?;
    for stmt in SCHEMA {
        conn.query_drop(*stmt)
            .await
            .context("creating the demo schema")?;
    }
    Ok(pool)
}

/// The unit price of `sku` in cents, if the product exists.
pub async fn price_cents(pool: &Pool, sku: &str) -> Result<Option<i64>> {
    let mut conn = pool.get_conn().await?;
    let price = conn
        .exec_first(
            "SELECT CAST(ROUND(price * 100) AS SIGNED) FROM demo_products WHERE sku = ?",
            (sku,),
        )
        .await?;
    Ok(price)
}

/// Inserts `order` (its `id` is ignored) and returns the new id.
pub async fn insert_order(pool: &Pool, order: &Order) -> Result<u64> {
    let mut conn = pool.get_conn().await?;
    conn.exec_drop(
        "INSERT INTO demo_orders (order_no, sku, qty, user, status, notified, created_at, amount)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            &order.order_no,
            &order.sku,
            order.qty,
            &order.user,
            &order.status,
            order.notified,
            &order.created_at,
            &order.amount,
        ),
    )
    .await?;
    conn.last_insert_id()
        .context("MySQL returned no id for the new order")
}

/// The order `order_no`, if it exists.
pub async fn find_order(pool: &Pool, order_no: &str) -> Result<Option<Order>> {
    type Row = (u64, String, String, u32, String, String, u8, String, Value);
    let mut conn = pool.get_conn().await?;
    let row: Option<Row> = conn
        .exec_first(
            "SELECT id, order_no, sku, qty, user, status, notified, amount, created_at
             FROM demo_orders WHERE order_no = ?",
            (order_no,),
        )
        .await?;
    Ok(row.map(
        |(id, order_no, sku, qty, user, status, notified, amount, created_at)| Order {
            id,
            order_no,
            sku,
            qty,
            user,
            status,
            notified: notified != 0,
            amount,
            created_at: datetime_text(&created_at),
        },
    ))
}

/// Deletes the order; false when there was none.
pub async fn delete_order(pool: &Pool, order_no: &str) -> Result<bool> {
    let mut conn = pool.get_conn().await?;
    conn.exec_drop("DELETE FROM demo_orders WHERE order_no = ?", (order_no,))
        .await?;
    Ok(conn.affected_rows() > 0)
}

/// Sets `notified = 1`; false when there is no such order (any more).
pub async fn mark_notified(pool: &Pool, order_no: &str) -> Result<bool> {
    let mut conn = pool.get_conn().await?;
    conn.exec_drop(
        "UPDATE demo_orders SET notified = 1 WHERE order_no = ?",
        (order_no,),
    )
    .await?;
    // A row that was already notified counts as found (affected_rows is 0 then).
    let found: Option<u8> = conn
        .exec_first(
            "SELECT notified FROM demo_orders WHERE order_no = ?",
            (order_no,),
        )
        .await?;
    Ok(found.is_some())
}

/// `SELECT 1`, for `/health`.
pub async fn ping(pool: &Pool) -> Result<()> {
    let mut conn = pool.get_conn().await?;
    conn.query_drop("SELECT 1").await?;
    Ok(())
}

/// A DATETIME(3) value as MySQL prints it: `2026-11-03 14:05:09.123`.
fn datetime_text(v: &Value) -> String {
    match v {
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}",
                us / 1000
            )
        }
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

/// Cents as decimal text: 2250 → `"22.50"`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// 10% off, rounded half up to the cent.
pub fn ten_percent_off(cents: i64) -> i64 {
    (cents * 90 + 50) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_discount() {
        assert_eq!(money(2500), "25.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(ten_percent_off(2500)), "22.50");
        assert_eq!(money(ten_percent_off(29997)), "269.97");
        assert_eq!(money(ten_percent_off(ten_percent_off(2500))), "20.25");
    }

    #[test]
    fn datetime_is_mysql_text_with_millis() {
        assert_eq!(
            datetime_text(&Value::Date(2026, 11, 3, 4, 5, 9, 123_456)),
            "2026-11-03 04:05:09.123"
        );
    }
}
