/**
 * Form fields generated from a connector's JSON Schema (made by the control plane from the
 * connector's zod schema). Scalars get typed inputs with the schema's limits; anything nested is
 * edited as JSON. Client-side checks here are for speed; the server checks with the zod schema itself.
 */
import { useId } from 'react';
import { describedBy, Field } from './ui.tsx';

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
}

export type FormValues = Record<string, unknown>;
export type FormErrors = Record<string, string>;

/** Reads the schema the server sent; anything that is not an object with properties yields no fields. */
export function asSchema(value: unknown): JsonSchema {
  return typeof value === 'object' && value !== null ? (value as JsonSchema) : {};
}

function kindOf(schema: JsonSchema): 'string' | 'number' | 'boolean' | 'enum' | 'json' {
  if (schema.enum) return 'enum';
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (type === 'string') return 'string';
  if (type === 'integer' || type === 'number') return 'number';
  if (type === 'boolean') return 'boolean';
  return 'json';
}

function humanize(name: string): string {
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** One property's problem, or null. */
function checkValue(schema: JsonSchema, value: unknown, required: boolean): string | null {
  if (value === undefined || value === '') return required ? 'Required.' : null;
  switch (kindOf(schema)) {
    case 'string': {
      if (typeof value !== 'string') return 'Expected text.';
      if (schema.minLength !== undefined && value.length < schema.minLength) return `At least ${schema.minLength} characters.`;
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return `At most ${schema.maxLength} characters.`;
      if (schema.pattern !== undefined) {
        try {
          if (!new RegExp(schema.pattern, 'u').test(value)) return `Does not match the expected format (${schema.pattern}).`;
        } catch {
          return null;
        }
      }
      return null;
    }
    case 'number': {
      if (typeof value !== 'number' || Number.isNaN(value)) return 'Expected a number.';
      if (schema.type === 'integer' && !Number.isInteger(value)) return 'Expected a whole number.';
      if (schema.minimum !== undefined && value < schema.minimum) return `At least ${schema.minimum}.`;
      if (schema.maximum !== undefined && value > schema.maximum) return `At most ${schema.maximum}.`;
      return null;
    }
    case 'json':
      return value instanceof SyntaxError ? 'Not valid JSON.' : null;
    default:
      return null;
  }
}

export function validateAgainst(schema: JsonSchema, values: FormValues): FormErrors {
  const errors: FormErrors = {};
  const required = new Set(schema.required ?? []);
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const problem = checkValue(property, values[name], required.has(name));
    if (problem) errors[name] = problem;
  }
  return errors;
}

/** The config to send: empty optional fields left out so the connector's defaults apply. */
export function configFrom(schema: JsonSchema, values: FormValues): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const name of Object.keys(schema.properties ?? {})) {
    const value = values[name];
    if (value === undefined || value === '' || value instanceof SyntaxError) continue;
    config[name] = value;
  }
  return config;
}

export function SchemaForm({
  schema,
  values,
  errors,
  onChange,
  disabled,
}: {
  schema: JsonSchema;
  values: FormValues;
  errors: FormErrors;
  onChange: (name: string, value: unknown) => void;
  disabled?: boolean;
}) {
  const prefix = useId();
  const required = new Set(schema.required ?? []);
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) return <p className="muted">This connector has no settings.</p>;
  return (
    <div className="schema-form">
      {properties.map(([name, property]) => {
        const id = `${prefix}-${name}`;
        const error = errors[name] ?? null;
        const hint = [property.description, property.default !== undefined ? `Default: ${JSON.stringify(property.default)}.` : null]
          .filter(Boolean)
          .join(' ');
        const label = `${humanize(name)}${required.has(name) ? '' : ' (optional)'}`;
        const common = {
          id,
          name,
          disabled,
          'aria-invalid': error ? true : undefined,
          'aria-describedby': describedBy(id, hint, error),
          'aria-required': required.has(name) || undefined,
        };
        const value = values[name];
        switch (kindOf(property)) {
          case 'enum':
            return (
              <Field key={name} id={id} label={label} hint={hint || undefined} error={error}>
                <select {...common} value={value === undefined ? '' : String(value)} onChange={(event) => onChange(name, event.target.value === '' ? undefined : event.target.value)}>
                  <option value="">{required.has(name) ? 'Choose…' : 'Default'}</option>
                  {(property.enum ?? []).map((option) => (
                    <option key={String(option)} value={String(option)}>
                      {String(option)}
                    </option>
                  ))}
                </select>
              </Field>
            );
          case 'boolean':
            return (
              <div className="field field-check" key={name}>
                <input {...common} type="checkbox" checked={value === true} onChange={(event) => onChange(name, event.target.checked)} />
                <label htmlFor={id}>{label}</label>
                {hint && (
                  <div className="hint" id={`${id}-hint`}>
                    {hint}
                  </div>
                )}
              </div>
            );
          case 'number':
            return (
              <Field key={name} id={id} label={label} hint={hint || undefined} error={error}>
                <input
                  {...common}
                  type="number"
                  inputMode="numeric"
                  min={property.minimum}
                  max={property.maximum}
                  step={property.type === 'integer' ? 1 : 'any'}
                  placeholder={property.default === undefined ? undefined : String(property.default)}
                  value={typeof value === 'number' && !Number.isNaN(value) ? value : ''}
                  onChange={(event) => onChange(name, event.target.value === '' ? undefined : Number(event.target.value))}
                />
              </Field>
            );
          case 'string':
            return (
              <Field key={name} id={id} label={label} hint={hint || undefined} error={error}>
                <input
                  {...common}
                  type="text"
                  autoComplete="off"
                  spellCheck={false}
                  maxLength={property.maxLength}
                  value={typeof value === 'string' ? value : ''}
                  onChange={(event) => onChange(name, event.target.value)}
                />
              </Field>
            );
          case 'json':
            return (
              <Field key={name} id={id} label={`${label}, JSON`} hint={hint || undefined} error={error}>
                <JsonInput common={common} value={value} onChange={(next) => onChange(name, next)} />
              </Field>
            );
        }
      })}
    </div>
  );
}

function JsonInput({ common, value, onChange }: { common: Record<string, unknown>; value: unknown; onChange: (value: unknown) => void }) {
  const text = value instanceof SyntaxError ? value.message.replace(/^json:/, '') : value === undefined ? '' : JSON.stringify(value, null, 2);
  return (
    <textarea
      {...common}
      rows={3}
      className="mono"
      spellCheck={false}
      defaultValue={text}
      onBlur={(event) => {
        const raw = event.target.value.trim();
        if (raw === '') return onChange(undefined);
        try {
          onChange(JSON.parse(raw));
        } catch {
          // Kept as an error value so the field shows "Not valid JSON" until it is fixed.
          onChange(new SyntaxError(`json:${raw}`));
        }
      }}
    />
  );
}
