import { readFileSync } from 'node:fs';

/**
 * The tiny typed client of the example operations: `request<TResult, TVariables>(document, variables)`
 * posts one operation and gives back `data` typed by the generated types (test/client/generated).
 */

export interface TypedResponse<TResult> {
  data: TResult | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export type TypedRequest = <TResult, TVariables extends Record<string, unknown>>(
  document: string,
  variables: TVariables,
) => Promise<TypedResponse<TResult>>;

/** A request function bound to a server and (optionally) a token. */
export function typedClient(baseUrl: string, token?: string): TypedRequest {
  return async (document, variables) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: document, variables }),
    });
    return (await response.json()) as TypedResponse<never>;
  };
}

/** The text of test/client/operations/<name>.graphql. */
export function operationDocument(name: string): string {
  return readFileSync(new URL(`./operations/${name}.graphql`, import.meta.url), 'utf8');
}
