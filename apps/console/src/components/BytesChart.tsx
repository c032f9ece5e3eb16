/**
 * Bytes delivered per hour as an SVG bar chart, with a table of the same figures for screen
 * readers. Hand-drawn: 24 bars need no chart library.
 */
import { formatBytes } from '../format.ts';

const WIDTH = 720;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 64 };

/** A round axis maximum: 1, 2 or 5 times a power of 1024-ish steps, at least the data's maximum. */
function niceMax(max: number): number {
  if (max <= 0) return 1024;
  const exponent = Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) {
    const candidate = step * 10 ** exponent;
    if (candidate >= max) return candidate;
  }
  return 10 ** (exponent + 1);
}

export function BytesChart({ series }: { series: ReadonlyArray<{ hour: string; bytes: number }> }) {
  const max = niceMax(Math.max(0, ...series.map((point) => point.bytes)));
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const slot = innerW / Math.max(1, series.length);
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const hourLabel = (iso: string) => new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const total = series.reduce((sum, point) => sum + point.bytes, 0);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-labelledby="bytes-chart-title">
        <title id="bytes-chart-title">{`Ciphertext bytes delivered per hour, last 24 hours: ${formatBytes(total)} in total`}</title>
        {ticks.map((tick) => {
          const y = PAD.top + innerH * (1 - tick);
          return (
            <g key={tick} className="chart-grid">
              <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y} y2={y} />
              <text x={PAD.left - 8} y={y + 4} textAnchor="end">
                {formatBytes(max * tick)}
              </text>
            </g>
          );
        })}
        {series.map((point, i) => {
          const h = (point.bytes / max) * innerH;
          const x = PAD.left + i * slot + slot * 0.15;
          return (
            <g key={point.hour}>
              <rect className="chart-bar" x={x} y={PAD.top + innerH - h} width={slot * 0.7} height={Math.max(h, point.bytes > 0 ? 1 : 0)}>
                <title>{`${hourLabel(point.hour)}: ${formatBytes(point.bytes)}`}</title>
              </rect>
              {i % 4 === 0 && (
                <text className="chart-axis" x={x + slot * 0.35} y={HEIGHT - 8} textAnchor="middle">
                  {hourLabel(point.hour)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption className="muted">Ciphertext bytes delivered per hour (finished runs), last 24 hours.</figcaption>
      {/* Wrapped: a table ignores overflow, so a hidden one would still stretch the page. */}
      <div className="visually-hidden">
        <table>
          <caption>Bytes delivered per hour</caption>
          <thead>
            <tr>
              <th scope="col">Hour</th>
              <th scope="col">Bytes</th>
            </tr>
          </thead>
          <tbody>
            {series.map((point) => (
              <tr key={point.hour}>
                <td>{hourLabel(point.hour)}</td>
                <td>{formatBytes(point.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}
