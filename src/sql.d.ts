/** SQL files are imported as text (wrangler `Text` rule; a tiny plugin in vitest.config.ts). */
declare module "*.sql" {
  const sql: string;
  export default sql;
}
