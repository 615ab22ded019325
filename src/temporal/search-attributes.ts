/**
 * Registers the budget workflows' custom search attributes, idempotently, at every start-up. With a
 * SQLite-backed dev server, `--search-attribute` only applies when the namespace is first created,
 * so registration goes through the OperatorService instead (docs/architecture.md, "Temporal").
 */
import type { Client } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import proto from '@temporalio/proto';
import { searchAttributes } from '../messages.js';

// @temporalio/proto is CommonJS: its namespace comes through the default import under native ESM.
const { temporal } = proto;
type IndexedValueTypeT = proto.temporal.api.enums.v1.IndexedValueType;
const IndexedValueType = temporal.api.enums.v1.IndexedValueType;

const TYPE: Record<string, IndexedValueTypeT> = {
  [SearchAttributeType.KEYWORD]: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  [SearchAttributeType.DOUBLE]: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  [SearchAttributeType.TEXT]: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  [SearchAttributeType.INT]: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  [SearchAttributeType.BOOL]: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  [SearchAttributeType.DATETIME]: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
};

/** Adds the attributes that are missing; returns the names it added. */
export async function registerSearchAttributes(client: Client, namespace: string): Promise<string[]> {
  const operator = client.connection.operatorService;
  const existing = await operator.listSearchAttributes({ namespace });
  const known = new Set([...Object.keys(existing.customAttributes ?? {}), ...Object.keys(existing.systemAttributes ?? {})]);
  const missing: Record<string, IndexedValueTypeT> = {};
  for (const key of Object.values(searchAttributes)) {
    if (!known.has(key.name)) missing[key.name] = TYPE[key.type]!;
  }
  if (Object.keys(missing).length === 0) return [];
  try {
    await operator.addSearchAttributes({ namespace, searchAttributes: missing });
  } catch (err) {
    // Another process registered them between our list and add: fine.
    if (!/already exists/i.test((err as Error).message)) throw err;
  }
  return Object.keys(missing);
}
