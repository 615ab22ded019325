/**
 * POST /v1/traces: an OTLP/HTTP trace receiver, so an OpenTelemetry SDK exporter or a Collector can
 * send GenAI spans to Cost Guard (protobuf or JSON, optionally gzip; the API key in a header, as a
 * Collector's `headers:` sends it). Each span with GenAI usage becomes one usage event
 * (src/domain/otel.ts), checked like POST /v1/usage's and recorded through the same CostTracker.
 *
 * OTLP's answers: 200 with an ExportTraceServiceResponse once every good span is durable, its
 * `partialSuccess` naming the refused spans and why (a bad span never blocks the others); 400 for a
 * body that is not an OTLP request (not retryable); 503 with Retry-After when Temporal is down
 * (retryable: the span ids make the retry count once). Error bodies are a google.rpc.Status for a
 * protobuf request, our JSON error shape otherwise.
 */
import { createGunzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import otlpRoot from '@opentelemetry/otlp-transformer/build/src/generated/root.js';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import protobuf from 'protobufjs/minimal.js';
import { z } from 'zod';
import { parseTrackedEvents } from '../../client/cost-tracker.js';
import { CostGuardError } from '../../domain/errors.js';
import { type OtlpExportTraceRequest, describeRefusal, issuesByAttribute, mapSpan, spansOf } from '../../domain/otel.js';
import type { UsageEvent } from '../../domain/usage.js';
import type { RouteDeps } from '../deps.js';
import { documentsOnly, errorSchema } from '../schemas.js';

interface MessageType {
  decode(bytes: Uint8Array): unknown;
  encode(message: unknown): { finish(): Uint8Array };
}
const collector = (otlpRoot as unknown as { opentelemetry: { proto: { collector: { trace: { v1: Record<string, MessageType> } } } } }).opentelemetry.proto.collector.trace.v1;
const ExportTraceServiceRequest = collector.ExportTraceServiceRequest!;
const ExportTraceServiceResponse = collector.ExportTraceServiceResponse!;

const PROTOBUF = 'application/x-protobuf';
/** gRPC status codes used in google.rpc.Status. */
const INVALID_ARGUMENT = 3;
const UNAVAILABLE = 14;
/** Seconds an exporter should wait before resending when Temporal is unavailable. */
const RETRY_AFTER_S = 5;
/** Refusals listed in one response's `errorMessage` (the count covers all of them). */
const MAX_LISTED_REFUSALS = 20;

/** google.rpc.Status { code = 1; message = 2 }: two fields, written with protobufjs' writer. */
function statusBytes(code: number, message: string): Uint8Array {
  return protobuf.Writer.create().uint32(8).int32(code).uint32(18).string(message).finish();
}

function isProtobuf(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === PROTOBUF;
}

function sendFailure(request: FastifyRequest, reply: FastifyReply, status: 400 | 503, message: string) {
  if (status === 503) void reply.header('retry-after', String(RETRY_AFTER_S));
  if (isProtobuf(request)) return reply.code(status).type(PROTOBUF).send(Buffer.from(statusBytes(status === 400 ? INVALID_ARGUMENT : UNAVAILABLE, message)));
  return reply.code(status).send({ error: status === 400 ? 'validation' : 'unavailable', message });
}

const partialSuccessSchema = z.object({
  partialSuccess: z
    .object({ rejectedSpans: z.string().describe('int64, as proto3 JSON writes it'), errorMessage: z.string() })
    .optional()
    .describe('Only when spans were refused: how many, and each named (name, trace and span id) with why'),
});

export const otlpRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const mapping = deps.config.otel;

  // Protobuf bodies reach the handler as bytes, decoded there so a bad body is answered in OTLP's shape.
  app.addContentTypeParser(PROTOBUF, { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post(
    '/v1/traces',
    {
      config: { scope: 'ingest' },
      schema: {
        operationId: 'exportTraces',
        summary: 'OTLP/HTTP trace export: GenAI spans become usage events',
        description:
          'An OTLP ExportTraceServiceRequest, protobuf (`application/x-protobuf`) or JSON (`application/json`), optionally ' +
          '`Content-Encoding: gzip`. Each span carrying `gen_ai.usage.*` (or `llm.usage.*`) token counts is one usage event keyed ' +
          'by trace id + span id (`otel:<trace>:<span>`), so a resent export counts once; other spans are ignored. See docs/otel.md.',
        body: documentsOnly(z.object({ resourceSpans: z.array(z.unknown()).optional() }).describe('ExportTraceServiceRequest (OTLP/JSON shown; protobuf accepted)')),
        response: {
          200: partialSuccessSchema.describe('Every good span is durable; refused spans are listed in partialSuccess (protobuf for a protobuf request)'),
          400: errorSchema.describe('Not an OTLP trace request (not retryable)'),
          503: errorSchema.describe('Temporal unavailable: retry after Retry-After seconds; spans count once'),
        },
      },
      // gzip is the one encoding OTLP exporters use; the decompressed body is held to the same size limit.
      preParsing: async (request, _reply, payload) => {
        const encoding = String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
        if (encoding === 'identity') return payload;
        if (encoding !== 'gzip') {
          throw Object.assign(new Error(`unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}: send gzip or none`), { statusCode: 415 });
        }
        const gunzip: Transform & { receivedEncodedLength?: number } = createGunzip();
        gunzip.receivedEncodedLength = 0;
        payload.on('data', (chunk: Buffer) => {
          gunzip.receivedEncodedLength = (gunzip.receivedEncodedLength ?? 0) + chunk.length;
        });
        payload.on('error', (err) => gunzip.destroy(err));
        return payload.pipe(gunzip);
      },
    },
    async (request, reply) => {
      let exported: OtlpExportTraceRequest;
      if (Buffer.isBuffer(request.body)) {
        try {
          exported = ExportTraceServiceRequest.decode(request.body) as OtlpExportTraceRequest;
        } catch (err) {
          return sendFailure(request, reply, 400, `the body is not an OTLP ExportTraceServiceRequest: ${(err as Error).message}`);
        }
      } else if (typeof request.body === 'object' && request.body !== null && !Array.isArray(request.body)) {
        exported = request.body as OtlpExportTraceRequest;
      } else {
        return sendFailure(request, reply, 400, 'the body must be an OTLP ExportTraceServiceRequest (a JSON object or protobuf)');
      }

      const now = deps.clock();
      const candidates: Extract<ReturnType<typeof mapSpan>, { kind: 'event' }>[] = [];
      const refusals: string[] = [];
      let ignored = 0;
      for (const { span, resource } of spansOf(exported)) {
        const outcome = mapSpan(span, resource, mapping);
        if (outcome.kind === 'event') candidates.push(outcome);
        else if (outcome.kind === 'ignored') ignored++;
        else refusals.push(describeRefusal(outcome.span, outcome.issues));
      }
      // The check POST /v1/usage applies, over all spans at once; when one fails, span by span, so a
      // bad span is refused alone and never blocks the rest.
      const options = { now, generateId: deps.generateId };
      const all = parseTrackedEvents(candidates.map((c) => c.input), options);
      const events: UsageEvent[] = all.ok ? all.value : [];
      if (!all.ok) {
        for (const c of candidates) {
          const one = parseTrackedEvents([c.input], { ...options, indexed: false });
          if (one.ok) events.push(one.value[0]!);
          else refusals.push(describeRefusal(c.span, issuesByAttribute(one.issues, c.sources)));
        }
      }

      if (events.length > 0) {
        try {
          await deps.tracker.recordValidated(events);
        } catch (err) {
          if (err instanceof CostGuardError && err.code === 'unavailable') {
            request.log.warn({ err, spans: events.length }, 'spans not accepted: Temporal unavailable');
            return sendFailure(request, reply, 503, 'Temporal is unavailable: the spans may not have been recorded; resend them (each span counts once)');
          }
          throw err;
        }
      }
      deps.metrics.recordOtlpSpans({ accepted: events.length, ignored, refused: refusals.length });

      let response: { partialSuccess?: { rejectedSpans: string; errorMessage: string } } = {};
      if (refusals.length > 0) {
        const listed = refusals.slice(0, MAX_LISTED_REFUSALS);
        if (refusals.length > listed.length) listed.push(`and ${refusals.length - listed.length} more`);
        response = { partialSuccess: { rejectedSpans: String(refusals.length), errorMessage: `${refusals.length} span(s) refused: ${listed.join(' | ')}` } };
        request.log.info({ refused: refusals.length, accepted: events.length }, 'OTLP export with refused spans');
      }
      if (isProtobuf(request)) {
        const bytes = ExportTraceServiceResponse.encode(
          response.partialSuccess ? { partialSuccess: { rejectedSpans: refusals.length, errorMessage: response.partialSuccess.errorMessage } } : {},
        ).finish();
        return reply.code(200).type(PROTOBUF).send(Buffer.from(bytes));
      }
      return reply.code(200).send(response);
    },
  );
};
