// The two functions of the `mime-types` package that src/static/mime.ts uses (the package ships
// no types of its own; a declaration here saves a dependency on @types/mime-types).
declare module 'mime-types' {
  /** The type for a path or extension, or false when the database has none. */
  export function lookup(pathOrExtension: string): string | false;
  /** The default charset of a type ("UTF-8" for text/*, JSON, JavaScript), or false. */
  export function charset(type: string): string | false;
  const mime: { lookup: typeof lookup; charset: typeof charset };
  export default mime;
}
