/** An authenticator app's enrollment: the otpauth:// URI as a QR code (a data: image, allowed by the CSP), and the secret typed out. */
import { useEffect, useState } from 'react';
import QRCode from 'qrcode';

export function TotpQrCode({ secret, otpauthUri }: { secret: string; otpauthUri: string }) {
  const [image, setImage] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    void QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M', margin: 1, width: 200 }).then((url) => {
      if (live) setImage(url);
    });
    return () => {
      live = false;
    };
  }, [otpauthUri]);
  return (
    <div className="totp-enroll">
      {image && <img src={image} width={200} height={200} alt="QR code for your authenticator app" data-testid="totp-qr" />}
      <p>
        Scan it with your authenticator app, or enter this key: <code data-testid="totp-secret">{secret}</code>
      </p>
    </div>
  );
}
