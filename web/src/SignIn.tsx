import { FormEvent, useState } from 'react';
import { passwordGrant, SignInError, StoredSession } from './session';

interface Props {
  apiOrigin: string;
  clientId: string;
  notice?: string;
  onSignedIn: (session: StoredSession) => void;
}

/** The sign-in page: plain HTML and a few styles, so it paints before the messenger loads. */
export default function SignIn({ apiOrigin, clientId, notice, onSignedIn }: Props) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const session = await passwordGrant(
        apiOrigin,
        clientId,
        String(form.get('username') ?? '').trim(),
        String(form.get('password') ?? ''),
      );
      onSignedIn(session);
    } catch (exc) {
      setError(exc instanceof SignInError ? exc.message : 'The server cannot be reached. Try again.');
      setBusy(false);
    }
  }

  return (
    <main className="dc-signin">
      <form className="dc-signin-card" onSubmit={submit} method="post" noValidate>
        <h1>Dovecote</h1>
        <p className="dc-signin-lead">Sign in to read and send your messages.</p>
        {notice && !error && <p className="dc-signin-notice">{notice}</p>}
        {error && (
          <p className="dc-signin-error" role="alert">
            {error}
          </p>
        )}
        <label>
          Username
          <input name="username" autoComplete="username" autoCapitalize="none" spellCheck={false} required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
