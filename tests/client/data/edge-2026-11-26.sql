PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE IF NOT EXISTS "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO _sqlite_migrations VALUES(1,'branchline-edge','view-overrides','2026-11-26 17:11:24.269537+00:00');
INSERT INTO _sqlite_migrations VALUES(2,'branchline-edge','stock-update-trigger-when-changed','2026-11-26 17:11:24.269653+00:00');
INSERT INTO _sqlite_migrations VALUES(3,'branchline-edge','stock-value-sums','2026-11-26 17:11:24.269730+00:00');
INSERT INTO _sqlite_migrations VALUES(4,'branchline-edge','server-rows-stored-once','2026-11-26 17:11:24.269803+00:00');
CREATE TABLE IF NOT EXISTS "_base" (
   "entity" TEXT NOT NULL,
   "key" TEXT NOT NULL,
   "version" INTEGER NOT NULL,
   "row" BLOB NOT NULL,
   PRIMARY KEY ("entity", "key")
);
CREATE TABLE IF NOT EXISTS "_view_override" (
   "entity" TEXT NOT NULL,
   "key" TEXT NOT NULL,
   "row" BLOB,
   PRIMARY KEY ("entity", "key")
);
INSERT INTO _view_override VALUES('stock_movement','00000000-0000-0000-0000-000000000259',X'85a6656e74697479ae73746f636b5f6d6f76656d656e74a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030323539a776657273696f6e01a66669656c647386a473697465a25331aa70726f647563745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a3717479ffa6726561736f6ea473616c65a9756e69745f636f7374c0ab646f63756d656e745f6964c0a46d65746184a47369746592bf3030313739353731333038343238312d3030303030302d73312d74696c6c3101aa70726f647563745f696492bf3030313739353731333038343238312d3030303030302d73312d74696c6c3101a371747992bf3030313739353731333038343238312d3030303030302d73312d74696c6c3101a6726561736f6e92bf3030313739353731333038343238312d3030303030302d73312d74696c6c3101');
INSERT INTO _view_override VALUES('stock_movement','00000000-0000-0000-0000-00000000025a',X'85a6656e74697479ae73746f636b5f6d6f76656d656e74a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030323561a776657273696f6e01a66669656c647386a473697465a25331aa70726f647563745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a3717479ffa6726561736f6ea473616c65a9756e69745f636f7374c0ab646f63756d656e745f6964c0a46d65746184a47369746592bf3030313739353731333038343238322d3030303030302d73312d74696c6c3101aa70726f647563745f696492bf3030313739353731333038343238322d3030303030302d73312d74696c6c3101a371747992bf3030313739353731333038343238322d3030303030302d73312d74696c6c3101a6726561736f6e92bf3030313739353731333038343238322d3030303030302d73312d74696c6c3101');
CREATE TABLE _outbox (pos INTEGER PRIMARY KEY AUTOINCREMENT, op_id TEXT NOT NULL UNIQUE, entity TEXT NOT NULL, key TEXT NOT NULL, op BLOB NOT NULL, created_ms INTEGER NOT NULL);
INSERT INTO _outbox VALUES(2,'01a218d7-2b79-720c-9207-450a2294d2bd','stock_movement','00000000-0000-0000-0000-000000000259',X'89a56f705f6964d92430316132313864372d326237392d373230632d393230372d343530613232393464326264a6656e74697479ae73746f636b5f6d6f76656d656e74a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030323539ac626173655f76657273696f6e00a66669656c647384a473697465a25331aa70726f647563745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a3717479ffa6726561736f6ea473616c65a3686c63bf3030313739353731333038343238312d3030303030302d73312d74696c6c31a475736572a5636c65726ba6646576696365a873312d74696c6c31ae736368656d615f76657273696f6e02',1795713084281);
INSERT INTO _outbox VALUES(3,'01a218d7-2b7a-70be-9ab4-970c9f1a967c','stock_movement','00000000-0000-0000-0000-00000000025a',X'89a56f705f6964d92430316132313864372d326237612d373062652d396162342d393730633966316139363763a6656e74697479ae73746f636b5f6d6f76656d656e74a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030323561ac626173655f76657273696f6e00a66669656c647384a473697465a25331aa70726f647563745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a3717479ffa6726561736f6ea473616c65a3686c63bf3030313739353731333038343238322d3030303030302d73312d74696c6c31a475736572a5636c65726ba6646576696365a873312d74696c6c31ae736368656d615f76657273696f6e02',1795713084282);
CREATE TABLE IF NOT EXISTS "_state" (
   "name" TEXT PRIMARY KEY NOT NULL,
   "value" TEXT
);
INSERT INTO _state VALUES('schema_version','2');
INSERT INTO _state VALUES('layout','5f53cbefb054010a');
INSERT INTO _state VALUES('server','ws://127.0.0.1:1/sync');
INSERT INTO _state VALUES('device','s1-till1');
INSERT INTO _state VALUES('site','S1');
INSERT INTO _state VALUES('token','bl_token');
INSERT INTO _state VALUES('cursor','2');
INSERT INTO _state VALUES('bootstrapped','1');
INSERT INTO _state VALUES('hlc','001795713084282-000000-s1-till1');
CREATE TABLE IF NOT EXISTS "_rejections" (
   "op_id" TEXT PRIMARY KEY NOT NULL,
   "entity" TEXT,
   "key" TEXT,
   "reason" TEXT,
   "op" BLOB NOT NULL,
   "at_ms" INTEGER
);
CREATE TABLE IF NOT EXISTS "stock_on_hand" (
   "site" TEXT NOT NULL,
   "product_id" TEXT NOT NULL,
   "qty" INTEGER NOT NULL,
   "costed_value" INTEGER NOT NULL DEFAULT 0,
   "uncosted_qty" INTEGER NOT NULL DEFAULT 0,
   PRIMARY KEY ("site", "product_id")
);
INSERT INTO stock_on_hand VALUES('S1','00000000-0000-0000-0000-000000000064',7,0,7);
CREATE TABLE IF NOT EXISTS "site" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "code" TEXT,
   "name" TEXT,
   "kind" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "product" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "sku" TEXT,
   "name" TEXT,
   "price" INTEGER,
   "description" TEXT,
   "barcode" TEXT,
   "category" TEXT,
   "unit" TEXT,
   "cost" INTEGER,
   "tax_rate" INTEGER,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
INSERT INTO product VALUES('00000000-0000-0000-0000-000000000064','OAT-1','Oat milk',199,NULL,NULL,NULL,NULL,NULL,NULL,1,0,X'84a6656e74697479a770726f64756374a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a776657273696f6e01a66669656c647383a3736b75a54f41542d31a46e616d65a84f6174206d696c6ba57072696365ccc7');
CREATE TABLE IF NOT EXISTS "stock_movement" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "product_id" TEXT,
   "qty" INTEGER,
   "reason" TEXT,
   "unit_cost" INTEGER,
   "document_id" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
INSERT INTO stock_movement VALUES('00000000-0000-0000-0000-000000000063','S1','00000000-0000-0000-0000-000000000064',10,'receipt',NULL,NULL,1,0,X'84a6656e74697479ae73746f636b5f6d6f76656d656e74a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030303633a776657273696f6e01a66669656c647384a473697465a25331aa70726f647563745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a37174790aa6726561736f6ea772656365697074');
INSERT INTO stock_movement VALUES('00000000-0000-0000-0000-000000000258','S1','00000000-0000-0000-0000-000000000064',-1,'sale',NULL,NULL,1,0,X'85a6656e74697479ae73746f636b5f6d6f76656d656e74a36b6579d92430303030303030302d303030302d303030302d303030302d303030303030303030323538a776657273696f6e01a66669656c647386a473697465a25331aa70726f647563745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303634a3717479ffa6726561736f6ea473616c65a9756e69745f636f7374c0ab646f63756d656e745f6964c0a46d65746184a47369746592bf3030313739353731333038343238302d3030303030302d73312d74696c6c3101aa70726f647563745f696492bf3030313739353731333038343238302d3030303030302d73312d74696c6c3101a371747992bf3030313739353731333038343238302d3030303030302d73312d74696c6c3101a6726561736f6e92bf3030313739353731333038343238302d3030303030302d73312d74696c6c3101');
INSERT INTO stock_movement VALUES('00000000-0000-0000-0000-000000000259','S1','00000000-0000-0000-0000-000000000064',-1,'sale',NULL,NULL,1,0,NULL);
INSERT INTO stock_movement VALUES('00000000-0000-0000-0000-00000000025a','S1','00000000-0000-0000-0000-000000000064',-1,'sale',NULL,NULL,1,0,NULL);
CREATE TABLE IF NOT EXISTS "customer" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "name" TEXT,
   "phone" TEXT,
   "email" TEXT,
   "credit_limit" INTEGER,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "purchase_order" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "supplier" TEXT,
   "total" INTEGER,
   "status" TEXT,
   "supplier_id" TEXT,
   "approved_by" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "transfer" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "from_site" TEXT,
   "to_site" TEXT,
   "product_id" TEXT,
   "qty" INTEGER,
   "status" TEXT,
   "qty_received" INTEGER,
   "unit_cost" INTEGER,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "account" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "code" TEXT,
   "name" TEXT,
   "type" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "journal_line" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "entry_id" TEXT,
   "site" TEXT,
   "account" TEXT,
   "debit" INTEGER,
   "credit" INTEGER,
   "memo" TEXT,
   "date" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "sale" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "device" TEXT,
   "receipt_no" TEXT,
   "kind" TEXT,
   "original_id" TEXT,
   "customer_id" TEXT,
   "net" INTEGER,
   "discount" INTEGER,
   "tax" INTEGER,
   "total" INTEGER,
   "cash" INTEGER,
   "card" INTEGER,
   "on_account" INTEGER,
   "cashier" TEXT,
   "date" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "sale_line" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "sale_id" TEXT,
   "site" TEXT,
   "line_no" INTEGER,
   "product_id" TEXT,
   "qty" INTEGER,
   "price" INTEGER,
   "discount" INTEGER,
   "tax" INTEGER,
   "cost" INTEGER,
   "original_line_id" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "stock_count" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "product_id" TEXT,
   "counted" INTEGER,
   "expected" INTEGER,
   "counted_by" TEXT,
   "date" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "discrepancy" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "transfer_id" TEXT,
   "from_site" TEXT,
   "to_site" TEXT,
   "product_id" TEXT,
   "shipped" INTEGER,
   "received" INTEGER,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "employee" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "login" TEXT,
   "name" TEXT,
   "department" TEXT,
   "site" TEXT,
   "role" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "supplier" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "name" TEXT,
   "email" TEXT,
   "phone" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "reorder_rule" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "product_id" TEXT,
   "level" INTEGER,
   "order_qty" INTEGER,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "po_line" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "po_id" TEXT,
   "site" TEXT,
   "product_id" TEXT,
   "qty" INTEGER,
   "unit_cost" INTEGER,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "goods_receipt" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "po_id" TEXT,
   "site" TEXT,
   "product_id" TEXT,
   "qty" INTEGER,
   "unit_cost" INTEGER,
   "received_by" TEXT,
   "date" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "purchase_suggestion" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "product_id" TEXT,
   "qty" INTEGER,
   "on_hand" INTEGER,
   "status" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "ticket" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "kind" TEXT,
   "sale_id" TEXT,
   "customer_id" TEXT,
   "text" TEXT,
   "status" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "price_change" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "product_id" TEXT,
   "price" INTEGER,
   "effective" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "supplier_return" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "supplier" TEXT,
   "po_id" TEXT,
   "product_id" TEXT,
   "qty" INTEGER,
   "unit_cost" INTEGER,
   "reason" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "stock_exception" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "product_id" TEXT,
   "on_hand" INTEGER,
   "movement_id" TEXT,
   "reason" TEXT,
   "document_id" TEXT,
   "status" TEXT,
   "resolution" TEXT,
   "resolved_by" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "customer_payment" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "site" TEXT,
   "customer_id" TEXT,
   "receipt_no" TEXT,
   "amount" INTEGER,
   "cash" INTEGER,
   "card" INTEGER,
   "cashier" TEXT,
   "date" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
CREATE TABLE IF NOT EXISTS "customer_entry" (
   "id" TEXT PRIMARY KEY NOT NULL,
   "customer_id" TEXT,
   "site" TEXT,
   "kind" TEXT,
   "amount" INTEGER,
   "document_id" TEXT,
   "receipt_no" TEXT,
   "date" TEXT,
   "_version" INTEGER,
   "_deleted" INTEGER,
   "_row" BLOB
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('_outbox',3);
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX "ix_outbox_row"
    ON "_outbox" ("entity", "key");
CREATE INDEX "idx_stock_movement_document_id"
    ON "stock_movement" ("document_id");
CREATE INDEX "idx_stock_movement_product_id"
    ON "stock_movement" ("product_id");
CREATE INDEX "idx_stock_movement_site"
    ON "stock_movement" ("site");
CREATE INDEX "idx_purchase_order_site"
    ON "purchase_order" ("site");
CREATE INDEX "idx_purchase_order_supplier_id"
    ON "purchase_order" ("supplier_id");
CREATE INDEX "idx_transfer_from_site"
    ON "transfer" ("from_site");
CREATE INDEX "idx_transfer_product_id"
    ON "transfer" ("product_id");
CREATE INDEX "idx_transfer_to_site"
    ON "transfer" ("to_site");
CREATE INDEX "idx_journal_line_entry_id"
    ON "journal_line" ("entry_id");
CREATE INDEX "idx_journal_line_site"
    ON "journal_line" ("site");
CREATE INDEX "idx_sale_customer_id"
    ON "sale" ("customer_id");
CREATE INDEX "idx_sale_original_id"
    ON "sale" ("original_id");
CREATE INDEX "idx_sale_site"
    ON "sale" ("site");
CREATE INDEX "idx_sale_line_original_line_id"
    ON "sale_line" ("original_line_id");
CREATE INDEX "idx_sale_line_product_id"
    ON "sale_line" ("product_id");
CREATE INDEX "idx_sale_line_sale_id"
    ON "sale_line" ("sale_id");
CREATE INDEX "idx_sale_line_site"
    ON "sale_line" ("site");
CREATE INDEX "idx_stock_count_product_id"
    ON "stock_count" ("product_id");
CREATE INDEX "idx_stock_count_site"
    ON "stock_count" ("site");
CREATE INDEX "idx_discrepancy_from_site"
    ON "discrepancy" ("from_site");
CREATE INDEX "idx_discrepancy_product_id"
    ON "discrepancy" ("product_id");
CREATE INDEX "idx_discrepancy_to_site"
    ON "discrepancy" ("to_site");
CREATE INDEX "idx_discrepancy_transfer_id"
    ON "discrepancy" ("transfer_id");
CREATE INDEX "idx_reorder_rule_product_id"
    ON "reorder_rule" ("product_id");
CREATE INDEX "idx_reorder_rule_site"
    ON "reorder_rule" ("site");
CREATE INDEX "idx_po_line_po_id"
    ON "po_line" ("po_id");
CREATE INDEX "idx_po_line_product_id"
    ON "po_line" ("product_id");
CREATE INDEX "idx_po_line_site"
    ON "po_line" ("site");
CREATE INDEX "idx_goods_receipt_po_id"
    ON "goods_receipt" ("po_id");
CREATE INDEX "idx_goods_receipt_product_id"
    ON "goods_receipt" ("product_id");
CREATE INDEX "idx_goods_receipt_site"
    ON "goods_receipt" ("site");
CREATE INDEX "idx_purchase_suggestion_product_id"
    ON "purchase_suggestion" ("product_id");
CREATE INDEX "idx_purchase_suggestion_site"
    ON "purchase_suggestion" ("site");
CREATE INDEX "idx_ticket_customer_id"
    ON "ticket" ("customer_id");
CREATE INDEX "idx_ticket_sale_id"
    ON "ticket" ("sale_id");
CREATE INDEX "idx_ticket_site"
    ON "ticket" ("site");
CREATE INDEX "idx_price_change_product_id"
    ON "price_change" ("product_id");
CREATE INDEX "idx_supplier_return_po_id"
    ON "supplier_return" ("po_id");
CREATE INDEX "idx_supplier_return_product_id"
    ON "supplier_return" ("product_id");
CREATE INDEX "idx_supplier_return_site"
    ON "supplier_return" ("site");
CREATE INDEX "idx_stock_exception_document_id"
    ON "stock_exception" ("document_id");
CREATE INDEX "idx_stock_exception_movement_id"
    ON "stock_exception" ("movement_id");
CREATE INDEX "idx_stock_exception_product_id"
    ON "stock_exception" ("product_id");
CREATE INDEX "idx_stock_exception_site"
    ON "stock_exception" ("site");
CREATE INDEX "idx_customer_payment_customer_id"
    ON "customer_payment" ("customer_id");
CREATE INDEX "idx_customer_payment_site"
    ON "customer_payment" ("site");
CREATE INDEX "idx_customer_entry_customer_id"
    ON "customer_entry" ("customer_id");
CREATE INDEX "idx_customer_entry_document_id"
    ON "customer_entry" ("document_id");
CREATE TRIGGER soh_insert AFTER INSERT ON stock_movement
        WHEN NEW._deleted = 0 BEGIN INSERT INTO stock_on_hand (site, product_id, qty, costed_value, uncosted_qty) VALUES (NEW.site, NEW.product_id, NEW.qty, NEW.qty * COALESCE(NEW.unit_cost, 0), NEW.qty * (NEW.unit_cost IS NULL)) ON CONFLICT (site, product_id) DO UPDATE SET qty = qty + excluded.qty, costed_value = costed_value + excluded.costed_value, uncosted_qty = uncosted_qty + excluded.uncosted_qty; END;
CREATE TRIGGER soh_delete AFTER DELETE ON stock_movement
        WHEN OLD._deleted = 0 BEGIN INSERT INTO stock_on_hand (site, product_id, qty, costed_value, uncosted_qty) VALUES (OLD.site, OLD.product_id, -OLD.qty, -OLD.qty * COALESCE(OLD.unit_cost, 0), -OLD.qty * (OLD.unit_cost IS NULL)) ON CONFLICT (site, product_id) DO UPDATE SET qty = qty + excluded.qty, costed_value = costed_value + excluded.costed_value, uncosted_qty = uncosted_qty + excluded.uncosted_qty; END;
CREATE TRIGGER soh_update AFTER UPDATE ON stock_movement
        WHEN OLD.site IS NOT NEW.site OR OLD.product_id IS NOT NEW.product_id
          OR OLD.qty IS NOT NEW.qty OR OLD.unit_cost IS NOT NEW.unit_cost
          OR OLD._deleted IS NOT NEW._deleted BEGIN
        INSERT INTO stock_on_hand (site, product_id, qty, costed_value, uncosted_qty) VALUES (OLD.site, OLD.product_id, -(OLD._deleted = 0) * OLD.qty, -(OLD._deleted = 0) * OLD.qty * COALESCE(OLD.unit_cost, 0), -(OLD._deleted = 0) * OLD.qty * (OLD.unit_cost IS NULL)) ON CONFLICT (site, product_id) DO UPDATE SET qty = qty + excluded.qty, costed_value = costed_value + excluded.costed_value, uncosted_qty = uncosted_qty + excluded.uncosted_qty;
        INSERT INTO stock_on_hand (site, product_id, qty, costed_value, uncosted_qty) VALUES (NEW.site, NEW.product_id, (NEW._deleted = 0) * NEW.qty, (NEW._deleted = 0) * NEW.qty * COALESCE(NEW.unit_cost, 0), (NEW._deleted = 0) * NEW.qty * (NEW.unit_cost IS NULL)) ON CONFLICT (site, product_id) DO UPDATE SET qty = qty + excluded.qty, costed_value = costed_value + excluded.costed_value, uncosted_qty = uncosted_qty + excluded.uncosted_qty;
    END;
COMMIT;
